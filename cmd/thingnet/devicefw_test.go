package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/internal/testutil"
)

// `thingnet device run --firmware-every 1` installs the release its
// organisation rolls out to its class and reports it; the image slots in
// its state directory hold it after the run. Without --trust the flag is
// refused.
func TestDeviceRunFirmware(t *testing.T) {
	d, node, ks := testDevnet(t, 1)
	run := func(args ...string) string { return mustCLI(t, node, ks, args...) }
	states := t.TempDir()
	if _, err := cli(t, node, ks, "device", "run", "--org", "demo", "--state-dir", states, "--firmware-every", "1"); err == nil || !strings.Contains(err.Error(), "--trust") {
		t.Fatalf("--firmware-every without --trust: %v", err)
	}

	img := make([]byte, 200<<10)
	rand.Read(img)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a, err := d.Files(0).Add(ctx, bytes.NewReader(img), nil)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "fw-1.0.0.bin")
	if err := os.WriteFile(src, img, 0o600); err != nil {
		t.Fatal(err)
	}
	run("firmware", "publish", src, "--key", "demo-admin", "--vendor", "demo", "--class", "temperature", "--version", "1.0.0", "--seq", "1", "--cid", a.CID.String())
	run("firmware", "approve", "--key", "demo-admin", "--org", "demo", "--vendor", "demo", "--class", "temperature", "--seq", "1")
	run("firmware", "rollout", "--key", "demo-admin", "--org", "demo", "--vendor", "demo", "--class", "temperature", "--seq", "1",
		"--percent", "100", "--blocks-per-wave", "1", "--max-failures", "3")
	var b2 struct{ Hash string }
	if err := json.Unmarshal([]byte(run("tx", "block", "2", "-o", "json")), &b2); err != nil {
		t.Fatal(err)
	}

	root := newRoot()
	var out testutil.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"--node", node, "--keystore", ks, "device", "run", "--name", "fw-1", "--org", "demo", "--admin", "demo-admin",
		"--state-dir", states, "--wake", "300ms", "--trust", "2:" + b2.Hash, "--firmware-every", "1"})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(rctx) }()
	for !strings.Contains(out.String(), "installed firmware 1.0.0 (seq 1") {
		select {
		case err := <-done:
			t.Fatalf("device run ended: %v\n%s", err, out.String())
		case <-ctx.Done():
			stop()
			t.Fatalf("no install within the time:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("device run: %v", err)
	}
	t.Logf("%s", out.String())
	if !strings.Contains(out.String(), "fw-1: runs firmware factory (seq 0); checks its rollout every 1 wakes") {
		t.Errorf("device run did not say what it runs:\n%s", out.String())
	}
	s, err := device.OpenSlots(filepath.Join(states, "fw-1", device.FirmwareSlotsDir), device.Firmware{})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Running(); r.Seq != 1 || r.Version != "1.0.0" {
		t.Fatalf("the slots run %+v", r)
	}
	if b, err := os.ReadFile(s.RunningImage()); err != nil || !bytes.Equal(b, img) {
		t.Fatalf("the running slot does not hold the image (%v)", err)
	}
	syncNodes(t, d)
	if st := run("firmware", "status", "--vendor", "demo", "--class", "temperature", "--org", "demo"); !strings.Contains(st, "installed 1, failed 0") {
		t.Errorf("firmware status after the install:\n%s", st)
	}
}
