package device_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/record"
)

func slotImage(t *testing.T, seq uint64, size int) ([]byte, *record.FirmwareManifest) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	sum := sha256.Sum256(b)
	return b, &record.FirmwareManifest{Vendor: "acme", Class: "valve", Version: "v" + string(rune('0'+seq)), Seq: seq, Digest: sum[:], Size: uint64(size)}
}

func install(t *testing.T, s *device.SlotInstaller, img []byte, m *record.FirmwareManifest) {
	t.Helper()
	st, err := s.Stage(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(img); err != nil {
		t.Fatal(err)
	}
	if err := st.Install(); err != nil {
		t.Fatal(err)
	}
}

// The A/B slots: an install switches slots and keeps the previous image;
// a staged image that is never installed (power lost while writing, a
// wrong image) leaves the running one untouched, across a reopen; a
// rollback returns to the previous image once; a damaged state or
// running image is refused at open.
func TestSlotInstaller(t *testing.T) {
	dir := t.TempDir()
	s, err := device.OpenSlots(dir, device.Firmware{Version: "factory"})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Running(); r.Seq != 0 || r.Version != "factory" {
		t.Fatalf("a new device runs %+v", r)
	}
	img1, m1 := slotImage(t, 1, 70<<10)
	img2, m2 := slotImage(t, 2, 50<<10)
	install(t, s, img1, m1)
	// Reopened after the first install: the factory image is kept for rollback.
	if s, err = device.OpenSlots(dir, device.Firmware{Version: "factory"}); err != nil {
		t.Fatal(err)
	}
	if p, ok := s.Previous(); !ok || p.Seq != 0 || p.Version != "factory" {
		t.Fatalf("kept for rollback after the first install: %+v %v", p, ok)
	}
	install(t, s, img2, m2)
	if p, ok := s.Previous(); !ok || p.Seq != 1 {
		t.Fatalf("kept for rollback: %+v %v", p, ok)
	}

	// Half an image of release 3 written, then the device loses power.
	img3, m3 := slotImage(t, 3, 90<<10)
	st, err := s.Stage(m3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(img3[:len(img3)/2]); err != nil {
		t.Fatal(err)
	}
	s, err = device.OpenSlots(dir, device.Firmware{Version: "factory"})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Running(); r.Seq != 2 {
		t.Fatalf("after power loss mid-write the device runs %+v; want release 2", r)
	}
	if err := s.VerifyRunning(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Previous(); ok {
		t.Error("the slot being overwritten is still offered for rollback")
	}

	// Installing a short or long image fails and changes nothing.
	st, err = s.Stage(m3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(append(img3, 0)); err == nil {
		t.Error("a write past the release's size was accepted")
	}
	st.Reset()
	st.Write(img3[:100])
	if err := st.Install(); err == nil {
		t.Fatal("a short image was installed")
	}
	if r, _ := s.Running(); r.Seq != 2 {
		t.Fatalf("after a failed install the device runs %+v", r)
	}

	// Install 3, roll back to 2 (once), reopen.
	install(t, s, img3, m3)
	if b, _ := os.ReadFile(s.RunningImage()); !bytes.Equal(b, img3) {
		t.Fatal("the running slot does not hold image 3")
	}
	if err := s.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := s.Rollback(); err == nil {
		t.Error("a second rollback had something to roll back to")
	}
	s, err = device.OpenSlots(dir, device.Firmware{Version: "factory"})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Running(); r.Seq != 2 {
		t.Fatalf("after a rollback and a reopen the device runs %+v; want release 2", r)
	}
	if b, _ := os.ReadFile(s.RunningImage()); !bytes.Equal(b, img2) {
		t.Fatal("the running slot does not hold image 2 after the rollback")
	}

	// A running image cut short, or a damaged state, is refused at open.
	if err := os.Truncate(s.RunningImage(), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := device.OpenSlots(dir, device.Firmware{}); err == nil || !strings.Contains(err.Error(), "the running image") {
		t.Errorf("a truncated running image: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, device.SlotStateFile), []byte(`{"active":"c","running":{"version":"x","seq":0}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := device.OpenSlots(dir, device.Firmware{}); err == nil || !strings.Contains(err.Error(), `slot "c"`) {
		t.Errorf("a state naming slot c: %v", err)
	}
	if _, err := s.Stage(&record.FirmwareManifest{Vendor: "acme", Class: "valve", Version: "4", Seq: 4, Size: 1}); err == nil {
		t.Error("a manifest without a digest was staged")
	}
}
