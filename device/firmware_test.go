package device_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/files/firmware"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// The demo organisation publishes two releases for its sensors and approves
// the first: a device proves the first approved (past a gateway that
// forges firmware proofs), the second, an unknown digest and an unknown
// release refused; it reports what it runs and its history keeps it.
func TestFirmwareApproved(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	// A class of its own: releases and approvals are class-wide records, and
	// the network is shared by every test (and every -count run).
	class := "fw-approved-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	me := tn.registerIn(t, identity.Ed25519, class)
	img1, img2 := sha256.Sum256([]byte("sensor firmware 1.0")), sha256.Sum256([]byte("sensor firmware 2.0"))
	for i, img := range [][]byte{img1[:], img2[:]} {
		seq := uint64(i + 1)
		raw, err := firmware.Sign(tn.admin, tn.admin.ID(), &record.FirmwareManifest{Vendor: devnet.DemoOrg, Class: class,
			Version: strconv.FormatUint(seq, 10) + ".0", Seq: seq, Digest: img, Size: 19})
		if err != nil {
			t.Fatal(err)
		}
		tn.send(t, tn.admin, &record.FirmwareRelease{Manifest: raw})
	}
	tn.send(t, tn.admin, &record.FirmwareApprove{Org: devnet.DemoOrg, Vendor: devnet.DemoOrg, Class: class, Seq: 1})

	// Alone, a gateway forging firmware proofs is caught.
	bad := fwLiar(t, tn.d.APIURL(0))
	dir := t.TempDir()
	alone, err := device.New(me, device.WithGateways(device.Gateway{API: bad.URL}), device.WithChainID(tn.d.ChainID()),
		device.WithTrust(tn.trust), device.WithStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alone.FirmwareApproved(ctx, devnet.DemoOrg, class, 1, img1[:]); !errors.Is(err, record.ErrBadProof) {
		t.Fatalf("a forged firmware proof: %v; want a proof refusal", err)
	}
	alone.Close()

	// With an honest gateway behind it, the device gets the truth.
	d, err := device.New(me, device.WithGateways(device.Gateway{API: bad.URL}, tn.gw(1)), device.WithChainID(tn.d.ChainID()),
		device.WithTrust(tn.trust), device.WithStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, err := d.FirmwareApproved(ctx, devnet.DemoOrg, class, 1, img1[:])
	if err != nil {
		t.Fatalf("approved release: %v", err)
	}
	if !a.Approved || a.Release == nil || a.Approval == nil || a.Approval.Org != devnet.DemoOrg || a.Release.Manifest.Version != "1.0" {
		t.Fatalf("approved release: %+v", a)
	}
	if d.Gateway().API != tn.gw(1).API {
		t.Errorf("the device uses %s after a lie; want the honest gateway", d.Gateway().API)
	}

	unknown := sha256.Sum256([]byte("something else"))
	for _, tc := range []struct {
		name    string
		class   string
		seq     uint64
		digest  []byte
		release bool // the release is proved to exist
	}{
		{"released, not approved", class, 2, img2[:], true},
		{"another digest than the release's", class, 1, unknown[:], true},
		{"no such release", class, 9, img1[:], false},
		{"another class", "camera", 1, img1[:], false},
	} {
		a, err := d.FirmwareApproved(ctx, devnet.DemoOrg, tc.class, tc.seq, tc.digest)
		if !errors.Is(err, device.ErrFirmwareNotApproved) {
			t.Errorf("%s: %v; want ErrFirmwareNotApproved", tc.name, err)
			continue
		}
		if a == nil || a.Approved || (a.Release != nil) != tc.release || a.Approval != nil {
			t.Errorf("%s: %+v", tc.name, a)
			continue
		}
		t.Logf("%s: %v", tc.name, err)
	}

	// Reports: the approved image, then the unapproved one (which flags it).
	if err := d.ReportFirmware(ctx, "1.0", img1[:]); err != nil {
		t.Fatal(err)
	}
	if err := d.ReportFirmware(ctx, "2.0", img2[:]); err != nil {
		t.Fatal(err)
	}
	if err := d.ReportFirmware(ctx, "x", []byte("short")); err == nil {
		t.Error("a report with a 5-byte digest was sent")
	}
	// The reports went through whichever gateway the device uses; node 0
	// may be a block behind it.
	var reports []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var page struct {
			Items []record.Event `json:"items"`
		}
		if err := client.New(tn.d.APIURL(0)).Get(ctx, "/v1/devices/"+url.PathEscape(me.ID())+"/history", &page); err != nil {
			t.Fatal(err)
		}
		reports = reports[:0]
		for _, e := range page.Items {
			if e.Kind == record.KindFirmwareReport {
				if e.Signer != me.ID() {
					t.Errorf("report signed by %s; want the device", e.Signer)
				}
				reports = append(reports, e.Note)
			}
		}
		if len(reports) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if len(reports) != 2 || !strings.Contains(reports[0], "firmware=1.0") || strings.Contains(reports[0], "NOT APPROVED") ||
		!strings.Contains(reports[1], "firmware=2.0") || !strings.Contains(reports[1], "NOT APPROVED") {
		t.Fatalf("history's firmware reports: %q", reports)
	}
}

// fwLiar is a proxy in front of a real node's API that changes the record
// in every firmware proof (/v1/proofs) it passes on.
func fwLiar(t *testing.T, upstream string) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(upstream)
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/v1/proofs" {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var pr record.Proof
		if json.Unmarshal(body, &pr) == nil && pr.Value != nil {
			var ap record.FirmwareApproval
			var rel record.FirmwareReleaseRecord
			switch {
			case record.Unmarshal(pr.Value, &ap) == nil:
				ap.Version += "-forged"
				pr.Value, _ = record.Marshal(&ap)
			case record.Unmarshal(pr.Value, &rel) == nil:
				rel.Manifest.Digest = bytes.Repeat([]byte{0xAB}, sha256.Size)
				pr.Value, _ = record.Marshal(&rel)
			}
			body, _ = json.Marshal(&pr)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s
}
