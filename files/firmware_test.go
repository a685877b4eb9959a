package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/thingnet/thingnet/files/firmware"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// A device fetches a release over bitswap and installs it only if the
// vendor signed it, it is for its class, newer than what it runs, and the
// image matches the digest.
func TestFirmwareCheck(t *testing.T) {
	n := newTestNet(t)
	gw := n.peer("acme", nil, nil)
	dev := n.peer("acme", gw, nil)
	vendor := n.ledger.Admins["acme"]
	image := randomBytes(t, 900<<10)
	a := add(t, gw, image)
	sum := sha256.Sum256(image)
	rel := func(seq uint64, class string) []byte {
		raw, err := firmware.Sign(vendor, vendor.ID(), &record.FirmwareManifest{Vendor: "acme", Class: class, Version: "2.0", Seq: seq, Digest: sum[:], Size: uint64(len(image)), CID: a.CID.String()})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	m, err := firmware.Verify(rel(5, "camera"), vendor.Public(), "camera", 4)
	if err != nil {
		t.Fatal(err)
	}
	c := firmware.NewImageChecker(m)
	root, _ := firmware.ParseCID(m.CID)
	if _, err := dev.files.Get(context.Background(), root, c, GetOptions{Peers: []peer.AddrInfo{gw.info()}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := firmware.Verify(rel(4, "camera"), vendor.Public(), "camera", 4); !errors.Is(err, firmware.ErrRollback) {
		t.Errorf("same seq: %v", err)
	}
	if _, err := firmware.Verify(rel(3, "camera"), vendor.Public(), "camera", 4); !errors.Is(err, firmware.ErrRollback) {
		t.Errorf("older seq: %v", err)
	}
	if _, err := firmware.Verify(rel(6, "meter"), vendor.Public(), "camera", 4); !errors.Is(err, firmware.ErrWrongClass) {
		t.Errorf("other class: %v", err)
	}
	other, _ := identity.GenerateKey(identity.Ed25519)
	if _, err := firmware.Verify(rel(6, "camera"), other.Public(), "camera", 4); !errors.Is(err, firmware.ErrBadSignature) {
		t.Errorf("other vendor key: %v", err)
	}
	bad := append([]byte(nil), image...)
	bad[7] ^= 1
	if err := firmware.CheckImage(m, bytes.NewReader(bad)); !errors.Is(err, firmware.ErrImageMismatch) {
		t.Errorf("altered image: %v", err)
	}
	if err := firmware.CheckImage(m, io.LimitReader(bytes.NewReader(image), 1000)); !errors.Is(err, firmware.ErrImageMismatch) {
		t.Errorf("truncated image: %v", err)
	}
}

// The ledger side: a vendor releases (no lower seq after a higher one), an
// organisation approves, a device reports; an unapproved image flags it and
// its history keeps every version.
func TestFirmwareLedger(t *testing.T) {
	n := newTestNet(t)
	vendor, customer := n.ledger.Admins["beta"], n.ledger.Admins["acme"]
	cam, err := n.ledger.Device("acme", "camera", identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	release := func(seq uint64, img string) error {
		raw, err := firmware.Sign(vendor, vendor.ID(), &record.FirmwareManifest{Vendor: "beta", Class: "camera", Version: "v" + img, Seq: seq, Digest: sum(img), Size: uint64(len(img))})
		if err != nil {
			t.Fatal(err)
		}
		return n.ledger.Do(vendor, &record.FirmwareRelease{Manifest: raw})
	}
	if err := release(2, "2"); err != nil {
		t.Fatal(err)
	}
	if err := release(1, "1"); err == nil {
		t.Fatal("an older release after a newer one was accepted")
	}
	// Signed by someone else's key, sent by the vendor: refused.
	raw, _ := firmware.Sign(customer, vendor.ID(), &record.FirmwareManifest{Vendor: "beta", Class: "camera", Version: "v3", Seq: 3, Digest: sum("3"), Size: 1})
	if err := n.ledger.Do(vendor, &record.FirmwareRelease{Manifest: raw}); err == nil {
		t.Fatal("a manifest with a forged signature was accepted")
	}
	if err := release(3, "3"); err != nil {
		t.Fatal(err)
	}
	mustDo(t, n, customer, &record.FirmwareApprove{Org: "acme", Vendor: "beta", Class: "camera", Seq: 2})
	mustDo(t, n, cam, &record.FirmwareReport{Digest: sum("2"), Version: "v2"})
	st, _ := n.ledger.View()
	d, _ := st.Device(cam.ID())
	if d.Firmware != "v2" || d.Labels[record.LabelFirmwareFlag] != "" {
		t.Fatalf("after an approved report: %+v", d)
	}
	mustDo(t, n, cam, &record.FirmwareReport{Digest: sum("3"), Version: "v3"}) // released, not approved by acme
	st, _ = n.ledger.View()
	d, _ = st.Device(cam.ID())
	if d.Firmware != "v3" || d.Labels[record.LabelFirmwareFlag] == "" {
		t.Fatalf("an unapproved image did not flag the device: %+v", d)
	}
	hist, err := st.History(cam.ID(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var reports []string
	for _, e := range hist {
		if e.Kind == record.KindFirmwareReport {
			reports = append(reports, e.Note)
		}
	}
	if len(reports) != 2 {
		t.Fatalf("history keeps %d firmware reports: %v", len(reports), reports)
	}
}

// A rollout to a simulated fleet in waves: devices install when offered,
// check the image, report; when too many fail, the ledger aborts the
// rollout and no further device is offered it.
func TestFirmwareRollout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failing map[int]bool
	}{
		{"all succeed", nil},
		{"abort", map[int]bool{0: true, 3: true, 6: true, 9: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t)
			vendor, admin := n.ledger.Admins["beta"], n.ledger.Admins["acme"]
			const fleet = 12
			var devs []*identity.Key
			for range fleet {
				k, err := n.ledger.Device("acme", "camera", identity.Ed25519)
				if err != nil {
					t.Fatal(err)
				}
				devs = append(devs, k)
			}
			image := []byte("camera firmware 3.0")
			sum := sha256.Sum256(image)
			raw, _ := firmware.Sign(vendor, vendor.ID(), &record.FirmwareManifest{Vendor: "beta", Class: "camera", Version: "3.0", Seq: 3, Digest: sum[:], Size: uint64(len(image))})
			mustDo(t, n, vendor, &record.FirmwareRelease{Manifest: raw})
			rollout := &record.FirmwareRollout{Org: "acme", Vendor: "beta", Class: "camera", Seq: 3, Percent: 25, BlocksPerWave: 2, MaxFailures: 2}
			if err := n.ledger.Do(admin, rollout); err == nil {
				t.Fatal("a rollout of an unapproved release was accepted")
			}
			mustDo(t, n, admin, &record.FirmwareApprove{Org: "acme", Vendor: "beta", Class: "camera", Seq: 3})
			mustDo(t, n, admin, rollout)
			{ // the first wave offers about a quarter of the fleet, not all of it
				st, _ := n.ledger.View()
				r, _ := st.FirmwareRolloutFor("acme", "camera")
				offered := 0
				for _, k := range devs {
					if r.Offers(k.ID(), st.Height+1) {
						offered++
					}
				}
				if offered == fleet {
					t.Fatalf("wave 1 of 25%% offers all %d devices", fleet)
				}
			}

			running := make([]uint64, fleet) // seq each device runs
			failed := make([]bool, fleet)
			for round := 0; round < 20; round++ {
				st, _ := n.ledger.View()
				r, err := st.FirmwareRolloutFor("acme", "camera")
				if err != nil {
					t.Fatal(err)
				}
				acted := false
				for i, k := range devs {
					if running[i] == 3 || failed[i] || !r.Offers(k.ID(), st.Height+1) {
						continue
					}
					rel, _ := st.FirmwareRelease("beta", "camera", 3)
					m, err := firmware.Verify(rel.Signed, vendor.Public(), "camera", running[i])
					if err != nil {
						t.Fatal(err)
					}
					if err := firmware.CheckImage(m, bytes.NewReader(image)); err != nil {
						t.Fatal(err)
					}
					rep := &record.FirmwareReport{Digest: m.Digest, Version: m.Version}
					if tc.failing[i] {
						rep.Failed, failed[i] = true, true
					} else {
						running[i] = m.Seq
					}
					mustDo(t, n, k, rep)
					acted = true
					break // one report a block: the rollout may abort in between
				}
				if !acted {
					mustDo(t, n, admin, &record.GrantAdd{Grantor: "org:acme", Subject: "org:beta", Action: "read", Resource: "org:acme/tick"}) // a block passes
				}
			}
			st, _ := n.ledger.View()
			r, _ := st.FirmwareRolloutFor("acme", "camera")
			installed := 0
			for _, s := range running {
				if s == 3 {
					installed++
				}
			}
			t.Logf("%s: installed %d, failed %d, status %s (wave %d)", tc.name, r.Installed, r.Failed, r.Status, r.Wave(st.Height))
			if int(r.Installed) != installed {
				t.Errorf("ledger counts %d installs, devices %d", r.Installed, installed)
			}
			if tc.failing == nil {
				if installed != fleet || r.Status != record.RolloutActive {
					t.Errorf("a clean rollout installed %d of %d (%s)", installed, fleet, r.Status)
				}
				return
			}
			if r.Status != record.RolloutAborted || r.Failed != 2 {
				t.Fatalf("rollout %s with %d failures; want aborted at 2", r.Status, r.Failed)
			}
			if installed+2 >= fleet {
				t.Errorf("the abort stopped nothing: %d installed", installed)
			}
			for _, k := range devs {
				if r.Offers(k.ID(), st.Height+100) {
					t.Fatal("an aborted rollout still offers the release")
				}
			}
		})
	}
}

// Each device counts once: a device that reports a failure again and again
// (a retry loop, a bug, a compromised device) cannot abort its
// organisation's rollout on its own, nor inflate the installs.
func TestFirmwareRolloutCountsEachDeviceOnce(t *testing.T) {
	n := newTestNet(t)
	vendor, admin := n.ledger.Admins["beta"], n.ledger.Admins["acme"]
	var devs []*identity.Key
	for range 3 {
		k, err := n.ledger.Device("acme", "camera", identity.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, k)
	}
	sum := sha256.Sum256([]byte("image 4"))
	raw, _ := firmware.Sign(vendor, vendor.ID(), &record.FirmwareManifest{Vendor: "beta", Class: "camera", Version: "4.0", Seq: 4, Digest: sum[:], Size: 7})
	mustDo(t, n, vendor, &record.FirmwareRelease{Manifest: raw})
	mustDo(t, n, admin, &record.FirmwareApprove{Org: "acme", Vendor: "beta", Class: "camera", Seq: 4})
	mustDo(t, n, admin, &record.FirmwareRollout{Org: "acme", Vendor: "beta", Class: "camera", Seq: 4, Percent: 100, BlocksPerWave: 1, MaxFailures: 2})
	counts := func() *record.FirmwareRolloutRecord {
		t.Helper()
		st, _ := n.ledger.View()
		r, err := st.FirmwareRolloutFor("acme", "camera")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for range 3 {
		mustDo(t, n, devs[0], &record.FirmwareReport{Digest: sum[:], Version: "4.0", Failed: true, Reason: "self-test failed"})
	}
	if r := counts(); r.Failed != 1 || r.Status != record.RolloutActive {
		t.Fatalf("one device's three failure reports: failed %d, %s; want 1, active", r.Failed, r.Status)
	}
	for range 2 {
		mustDo(t, n, devs[1], &record.FirmwareReport{Digest: sum[:], Version: "4.0"})
	}
	mustDo(t, n, devs[0], &record.FirmwareReport{Digest: sum[:], Version: "4.0"}) // installed on a retry
	if r := counts(); r.Installed != 2 || r.Failed != 1 {
		t.Fatalf("installs %d, failures %d; want 2 devices installed, 1 failed", r.Installed, r.Failed)
	}
	mustDo(t, n, devs[2], &record.FirmwareReport{Digest: sum[:], Version: "4.0", Failed: true})
	if r := counts(); r.Failed != 2 || r.Status != record.RolloutAborted {
		t.Fatalf("a second device's failure: failed %d, %s; want 2, aborted", r.Failed, r.Status)
	}
}
