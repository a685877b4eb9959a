package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/thingnet/thingnet/identity"
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
		raw, err := SignFirmware(vendor, vendor.ID(), &FirmwareManifest{Vendor: "acme", Class: class, Version: "2.0", Seq: seq, Digest: sum[:], Size: uint64(len(image)), CID: a.CID.String()})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	m, err := VerifyFirmware(rel(5, "camera"), vendor.Public(), "camera", 4)
	if err != nil {
		t.Fatal(err)
	}
	c := NewImageChecker(m)
	root, _ := ParseCID(m.CID)
	if _, err := dev.files.Get(context.Background(), root, c, GetOptions{Peers: []peer.AddrInfo{gw.info()}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyFirmware(rel(4, "camera"), vendor.Public(), "camera", 4); !errors.Is(err, ErrRollback) {
		t.Errorf("same seq: %v", err)
	}
	if _, err := VerifyFirmware(rel(3, "camera"), vendor.Public(), "camera", 4); !errors.Is(err, ErrRollback) {
		t.Errorf("older seq: %v", err)
	}
	if _, err := VerifyFirmware(rel(6, "meter"), vendor.Public(), "camera", 4); !errors.Is(err, ErrWrongClass) {
		t.Errorf("other class: %v", err)
	}
	other, _ := identity.GenerateKey(identity.Ed25519)
	if _, err := VerifyFirmware(rel(6, "camera"), other.Public(), "camera", 4); !errors.Is(err, ErrBadFirmwareSig) {
		t.Errorf("other vendor key: %v", err)
	}
	bad := append([]byte(nil), image...)
	bad[7] ^= 1
	if err := CheckImage(m, bytes.NewReader(bad)); !errors.Is(err, ErrImageMismatch) {
		t.Errorf("altered image: %v", err)
	}
	if err := CheckImage(m, io.LimitReader(bytes.NewReader(image), 1000)); !errors.Is(err, ErrImageMismatch) {
		t.Errorf("truncated image: %v", err)
	}
}

// FuzzDecodeFirmware: the manifest decoder never panics; what it accepts
// has a 32-byte digest and a positive sequence.
func FuzzDecodeFirmware(f *testing.F) {
	k, _ := identity.GenerateKey(identity.Ed25519)
	sum := sha256.Sum256([]byte("x"))
	raw, err := SignFirmware(k, k.ID(), &FirmwareManifest{Vendor: "acme", Class: "camera", Version: "1", Seq: 1, Digest: sum[:], Size: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := DecodeFirmware(b)
		if err != nil {
			return
		}
		if len(m.Digest) != 32 || m.Seq == 0 {
			t.Fatalf("accepted %+v", m)
		}
	})
}
