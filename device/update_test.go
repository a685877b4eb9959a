package device_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/device/meshnode"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/files/firmware"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// fwClass is a device class of its own for one test: releases and
// rollouts are per class, so tests sharing the devnet do not meet.
func fwClass(t *testing.T) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("fw-%x", b)
}

// registerClass registers keys as demo devices of class, in one batch,
// and waits until every node applied it.
func (tn *testNet) registerClass(t *testing.T, class string, keys ...*identity.Key) {
	t.Helper()
	ctx := ctxT(t)
	var regs []*record.DeviceRegister
	for _, k := range keys {
		proof, _ := k.Sign(record.PossessionMessage(tn.d.ChainID(), devnet.DemoOrg, k.ID()))
		regs = append(regs, &record.DeviceRegister{Org: devnet.DemoOrg, Device: k.ID(), Class: class, Proof: proof})
	}
	c := client.New(tn.d.APIURL(0))
	if _, err := device.RegisterAll(ctx, c, tn.admin, tn.d.ChainID(), regs); err != nil {
		t.Fatal(err)
	}
	tn.applied(t, tn.d.App(0).Height())
}

// applied waits until every node applied block h.
func (tn *testNet) applied(t *testing.T, h int64) {
	t.Helper()
	ctx := ctxT(t)
	for i := range tn.d.Size() {
		for a := tn.d.App(i); a == nil || a.Height() < h; a = tn.d.App(i) {
			select {
			case <-ctx.Done():
				t.Fatalf("node %d did not apply block %d", i, h)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// synced waits until every node applied the highest block any node has
// applied (what a device learned from one gateway, node 0 knows too).
func (tn *testNet) synced(t *testing.T) {
	t.Helper()
	var h int64
	for i := range tn.d.Size() {
		if a := tn.d.App(i); a != nil {
			h = max(h, a.Height())
		}
	}
	tn.applied(t, h)
}

func newKeys(t *testing.T, n int) []*identity.Key {
	t.Helper()
	ks := make([]*identity.Key, n)
	for i := range ks {
		k, err := identity.GenerateKey(identity.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		ks[i] = k
	}
	return ks
}

// fwImage is a release's image, stored on node 0's file service.
type fwImage struct {
	data []byte
	m    record.FirmwareManifest
}

// publish adds a random image of size bytes to node 0's files and
// releases it as vendor demo's class #seq.
func (tn *testNet) publish(t *testing.T, class string, seq uint64, size int) *fwImage {
	t.Helper()
	img := make([]byte, size)
	rand.Read(img)
	a, err := tn.d.Files(0).Add(ctxT(t), bytes.NewReader(img), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	m := record.FirmwareManifest{Vendor: devnet.DemoOrg, Class: class, Version: fmt.Sprintf("%d.0", seq), Seq: seq,
		Digest: sum[:], Size: uint64(size), CID: a.CID.String()}
	raw, err := firmware.Sign(tn.admin, tn.admin.ID(), &m)
	if err != nil {
		t.Fatal(err)
	}
	tn.send(t, tn.admin, &record.FirmwareRelease{Manifest: raw})
	return &fwImage{data: img, m: m}
}

// rollout approves release class #seq for the demo organisation and rolls
// it out; it returns the rollout record.
func (tn *testNet) rollout(t *testing.T, class string, seq uint64, percent, blocksPerWave, maxFailures uint32, approve bool) *record.FirmwareRolloutRecord {
	t.Helper()
	if approve {
		tn.send(t, tn.admin, &record.FirmwareApprove{Org: devnet.DemoOrg, Vendor: devnet.DemoOrg, Class: class, Seq: seq})
	}
	tn.send(t, tn.admin, &record.FirmwareRollout{Org: devnet.DemoOrg, Vendor: devnet.DemoOrg, Class: class, Seq: seq,
		Percent: percent, BlocksPerWave: blocksPerWave, MaxFailures: maxFailures})
	return tn.rolloutRecord(t, class)
}

func (tn *testNet) rolloutRecord(t *testing.T, class string) *record.FirmwareRolloutRecord {
	t.Helper()
	tn.synced(t)
	var ro struct {
		Record client.Rollout `json:"record"`
	}
	if err := client.New(tn.d.APIURL(0)).Get(ctxT(t), "/v1/rollouts/"+devnet.DemoOrg+"/"+class, &ro); err != nil {
		t.Fatal(err)
	}
	if ro.Record.FirmwareRolloutRecord == nil {
		t.Fatalf("no rollout record for %s/%s", devnet.DemoOrg, class)
	}
	return ro.Record.FirmwareRolloutRecord
}

// firmwareHistory is the notes of a device's firmware reports, oldest first.
func (tn *testNet) firmwareHistory(t *testing.T, id string) []string {
	t.Helper()
	tn.synced(t)
	var page struct {
		Items []record.Event `json:"items"`
	}
	if err := client.New(tn.d.APIURL(0)).Get(ctxT(t), "/v1/devices/"+url.PathEscape(id)+"/history", &page); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range page.Items {
		if e.Kind == record.KindFirmwareReport {
			out = append(out, e.Note)
		}
	}
	return out
}

// fwDevice is a device with its slots.
type fwDevice struct {
	d     *device.Device
	slots *device.SlotInstaller
	dir   string
}

func (tn *testNet) fwDevice(t *testing.T, k *identity.Key, gws ...device.Gateway) *fwDevice {
	t.Helper()
	if len(gws) == 0 {
		gws = []device.Gateway{tn.gw(1), tn.gw(2)}
	}
	dir := t.TempDir()
	d, err := device.New(k, device.WithGateways(gws...), device.WithChainID(tn.d.ChainID()), device.WithTrust(tn.trust), device.WithStateDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s, err := device.OpenSlots(filepath.Join(dir, device.FirmwareSlotsDir), device.Firmware{Version: "factory"})
	if err != nil {
		t.Fatal(err)
	}
	return &fwDevice{d: d, slots: s, dir: dir}
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Agents of a class install release 1 rolled out to the whole class, then
// release 2: each proves the offer, fetches the image (added on node 0,
// served by nodes 1 and 2 over bitswap), checks it, switches slots and
// reports; the ledger's history of each device shows both versions. The
// slots survive a reopen, with release 1 kept for rollback. A rollout of
// release 1 again is then refused by the device as a rollback, reported
// once as a failure, and nothing changes on the device.
func TestFirmwareUpdateAgents(t *testing.T) {
	tn := startNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	class := fwClass(t)
	keys := newKeys(t, 3)
	tn.registerClass(t, class, keys...)
	v1 := tn.publish(t, class, 1, 600<<10)
	tn.rollout(t, class, 1, 100, 1, 3, true)

	devs := make([]*fwDevice, len(keys))
	var mu sync.Mutex
	var results []device.UpdateResult
	actx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, k := range keys {
		devs[i] = tn.fwDevice(t, k)
		s, err := device.NewSensor(device.ClassTemperature, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		a := &device.Agent{Device: devs[i].d, Sensors: []device.Sensor{s}, Wake: 400 * time.Millisecond,
			Firmware: &device.FirmwareUpdater{Installer: devs[i].slots, Every: 2, OnResult: func(r device.UpdateResult) {
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}}}
		wg.Add(1)
		go func() { defer wg.Done(); a.Run(actx) }()
	}
	defer func() { stop(); wg.Wait() }()
	runs := func(seq uint64) func() bool {
		return func() bool {
			for _, d := range devs {
				if r, _ := d.slots.Running(); r.Seq != seq {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, ctx, "every agent to run release 1", runs(1))

	v2 := tn.publish(t, class, 2, 300<<10)
	tn.rollout(t, class, 2, 100, 1, 3, true)
	waitFor(t, ctx, "every agent to run release 2", runs(2))
	// The report follows the install at once; wait for it to commit.
	waitFor(t, ctx, "every agent's report of release 2", func() bool {
		return tn.rolloutRecord(t, class).Installed == uint32(len(devs))
	})
	stop()
	wg.Wait()

	for i, d := range devs {
		if err := d.slots.VerifyRunning(); err != nil {
			t.Error(err)
		}
		if b, err := os.ReadFile(d.slots.RunningImage()); err != nil || !bytes.Equal(b, v2.data) {
			t.Errorf("device %d: the running slot does not hold image 2 (%v)", i, err)
		}
		if p, ok := d.slots.Previous(); !ok || p.Seq != 1 || !bytes.Equal(p.Digest, v1.m.Digest) {
			t.Errorf("device %d: kept for rollback: %+v %v; want release 1", i, p, ok)
		}
		h := tn.firmwareHistory(t, keys[i].ID())
		if len(h) != 2 || !strings.Contains(h[0], "firmware=1.0") || !strings.Contains(h[1], "firmware=2.0") || strings.Contains(h[0]+h[1], "NOT APPROVED") {
			t.Errorf("device %d: history's firmware reports: %q", i, h)
		}
	}
	mu.Lock()
	var installs int
	for _, r := range results {
		if r.Action == device.UpdateInstalled {
			installs++
		}
		if r.Action == device.UpdateRetry || r.Action == device.UpdateGaveUp {
			t.Errorf("a failed attempt: %+v", r)
		}
	}
	mu.Unlock()
	if installs != 2*len(devs) {
		t.Errorf("%d installs reported to OnResult; want %d", installs, 2*len(devs))
	}

	// Restart: the slots and what runs survive.
	s, err := device.OpenSlots(filepath.Join(devs[0].dir, device.FirmwareSlotsDir), device.Firmware{Version: "factory"})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Running(); r.Seq != 2 || r.Version != "2.0" {
		t.Fatalf("after a reopen the slots run %+v; want release 2", r)
	}

	// Release 1 rolled out again: a rollback, refused and reported once.
	tn.rollout(t, class, 1, 100, 1, 3, false)
	u := &device.FirmwareUpdater{Installer: s, Every: 1}
	r, err := u.Check(ctx, devs[0].d)
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != device.UpdateGaveUp || !errors.Is(r.Err, firmware.ErrRollback) || !errors.Is(r.Err, device.ErrFirmwareRefused) {
		t.Fatalf("a rollback offered: %s (%v); want gave-up with ErrRollback", r.Action, r.Err)
	}
	if r, err := u.Check(ctx, devs[0].d); err != nil || r.Action != device.UpdateWaiting {
		t.Fatalf("offered again: %+v %v; want waiting, no second report", r, err)
	}
	if run, _ := s.Running(); run.Seq != 2 {
		t.Fatalf("after a refused rollback the device runs %+v", run)
	}
	if err := s.VerifyRunning(); err != nil {
		t.Fatal(err)
	}
	h := tn.firmwareHistory(t, keys[0].ID())
	if len(h) != 3 || !strings.Contains(h[2], "FAILED: 1.0") || !strings.Contains(h[2], "rollback refused") {
		t.Fatalf("history after the refused rollback: %q", h)
	}
	if ro := tn.rolloutRecord(t, class); ro.Failed != 1 || ro.Installed != 0 {
		t.Errorf("the rollback rollout counts %d failed, %d installed; want 1, 0", ro.Failed, ro.Installed)
	}
	t.Logf("history of %s: %q", keys[0].ID(), h)
}

// A rollout in waves of 50 %: a device in a bucket above the first wave
// is not offered the release (proved: the offer names its bucket and the
// wave) until the second wave opens; then it installs it.
func TestFirmwareWaves(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	class := fwClass(t)
	tn.publish(t, class, 1, 64<<10)
	const blocks = 8
	ro := tn.rollout(t, class, 1, 50, blocks, 3, true)
	// Pick one key in the first wave and one outside it (buckets depend on
	// the rollout's start height and the device id only).
	var in, out *identity.Key
	for in == nil || out == nil {
		k := newKeys(t, 1)[0]
		if ro.Bucket(k.ID()) < 50 {
			in = k
		} else {
			out = k
		}
	}
	tn.registerClass(t, class, in, out)
	din, dout := tn.fwDevice(t, in), tn.fwDevice(t, out)

	o, err := dout.d.OfferedFirmware(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o.Wave != 1 {
		t.Fatalf("the device asked at wave %d (height %d, rollout from %d, %d blocks a wave): the machine is too slow for this test's window", o.Wave, o.Height, ro.Start, blocks)
	}
	if o.Offered || o.Rollout == nil || o.Bucket != ro.Bucket(out.ID()) || !strings.Contains(o.Reason, "bucket") {
		t.Fatalf("outside the first wave: %+v", o)
	}
	t.Logf("outside the wave: %s", o.Reason)
	u := &device.FirmwareUpdater{Installer: dout.slots, Every: 1}
	if r, err := u.Check(ctx, dout.d); err != nil || r.Action != device.UpdateNone {
		t.Fatalf("update check outside the wave: %+v %v", r, err)
	}
	if run, _ := dout.slots.Running(); run.Seq != 0 {
		t.Fatalf("outside the wave the device installed %+v", run)
	}

	o, err = din.d.OfferedFirmware(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Offered || o.Release == nil || o.Release.Manifest.Seq != 1 || o.Approval == nil {
		t.Fatalf("inside the first wave: %+v", o)
	}

	// Wave 2 covers every bucket.
	tn.applied(t, ro.Start+blocks)
	r, err := u.Check(ctx, dout.d)
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != device.UpdateInstalled || r.Offer.Wave < 2 || r.Running.Seq != 1 {
		t.Fatalf("in the second wave: %s at wave %d, running %+v (%v)", r.Action, r.Offer.Wave, r.Running, r.Err)
	}
}

// tamper is a proxy in front of a real node's API that passes everything
// through but the content endpoint, whose bytes it alters: flip changes
// one byte, pad sends more bytes than the file has (chunked, no length).
func tamper(t *testing.T, upstream, how string, served *atomic.Int32) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(upstream)
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.Path, "/v1/content/") {
			return nil
		}
		served.Add(1)
		switch how {
		case "flip":
			resp.Body = &flipReader{r: resp.Body, at: 1000}
		case "pad":
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(resp.Body, bytes.NewReader(make([]byte, 4096))), resp.Body}
			resp.ContentLength = -1
			resp.Header.Del("Content-Length")
		}
		return nil
	}
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s
}

type flipReader struct {
	r   io.ReadCloser
	at  int64
	off int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.off && f.at < f.off+int64(n) {
		p[f.at-f.off] ^= 0x40
	}
	f.off += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return f.r.Close() }

// Gateways serving a tampered image (a flipped byte; extra bytes past
// the size) are refused while the image streams in, and the image is
// fetched from the next gateway: the device installs exactly the released
// image. With only tampering gateways nothing is installed; the attempt is
// retried, backing off, and after 3 the failure is reported once.
func TestFirmwareTamperedImage(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	class := fwClass(t)
	keys := newKeys(t, 2)
	tn.registerClass(t, class, keys...)
	img := tn.publish(t, class, 1, 700<<10)
	tn.rollout(t, class, 1, 100, 1, 3, true)

	var flipped, padded atomic.Int32
	flip := tamper(t, tn.d.APIURL(1), "flip", &flipped)
	pad := tamper(t, tn.d.APIURL(2), "pad", &padded)

	// Only liars: nothing installed, the slot's staging discarded.
	alone := tn.fwDevice(t, keys[1], device.Gateway{API: flip.URL}, device.Gateway{API: pad.URL})
	u := &device.FirmwareUpdater{Installer: alone.slots, Every: 1}
	r, err := u.Check(ctx, alone.d)
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != device.UpdateRetry || !errors.Is(r.Err, device.ErrNoImage) || !errors.Is(r.Err, firmware.ErrImageMismatch) {
		t.Fatalf("only tampering gateways: %s (%v); want a retry after image mismatches", r.Action, r.Err)
	}
	if run, _ := alone.slots.Running(); run.Seq != 0 {
		t.Fatalf("a tampered image was installed: %+v", run)
	}
	if h := tn.firmwareHistory(t, keys[1].ID()); len(h) != 0 {
		t.Fatalf("a fetch failure was reported: %q", h)
	}
	t.Logf("only tampering gateways: %v", r.Err)
	// Back-off: attempt 2 at the next check, attempt 3 two checks later,
	// then it gives up and reports once; a restarted updater (state on
	// disk) does not try or report again.
	var actions []string
	for range 4 {
		r, err := u.Check(ctx, alone.d)
		if err != nil {
			t.Fatal(err)
		}
		actions = append(actions, fmt.Sprintf("%s/%d", r.Action, r.Attempt))
	}
	if want := "retry/2 waiting/2 gave-up/3 waiting/3"; strings.Join(actions, " ") != want {
		t.Fatalf("checks after the first failure: %s; want %s", strings.Join(actions, " "), want)
	}
	restarted := &device.FirmwareUpdater{Installer: alone.slots, Every: 1}
	if r, err := restarted.Check(ctx, alone.d); err != nil || r.Action != device.UpdateWaiting || r.Attempt != 3 {
		t.Fatalf("a restarted updater: %+v %v; want waiting after 3 attempts", r, err)
	}
	if h := tn.firmwareHistory(t, keys[1].ID()); len(h) != 1 || !strings.Contains(h[0], "FAILED") || !strings.Contains(h[0], "gave up after 3 attempt(s)") {
		t.Fatalf("history after giving up: %q", h)
	}
	if run, _ := alone.slots.Running(); run.Seq != 0 {
		t.Fatalf("a tampered image was installed: %+v", run)
	}

	// With an honest gateway behind them, the device gets the image.
	flipped.Store(0)
	padded.Store(0)
	dev := tn.fwDevice(t, keys[0], device.Gateway{API: flip.URL}, device.Gateway{API: pad.URL}, tn.gw(3))
	u = &device.FirmwareUpdater{Installer: dev.slots, Every: 1}
	r, err = u.Check(ctx, dev.d)
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != device.UpdateInstalled || r.Running.Seq != 1 {
		t.Fatalf("with an honest gateway: %s (%v)", r.Action, r.Err)
	}
	if flipped.Load() == 0 || padded.Load() == 0 {
		t.Errorf("the tampering gateways served %d and %d images; want both asked first", flipped.Load(), padded.Load())
	}
	b, err := os.ReadFile(dev.slots.RunningImage())
	if err != nil || !bytes.Equal(b, img.data) {
		t.Fatalf("the installed image is not the release's (%v)", err)
	}
	if h := tn.firmwareHistory(t, keys[0].ID()); len(h) != 1 || !strings.Contains(h[0], "firmware=1.0") {
		t.Fatalf("history: %q", h)
	}
}

// failingInstaller fails every install, as an image that does not pass
// the device's self-test would.
type failingInstaller struct{ *device.SlotInstaller }

func (f failingInstaller) Stage(m *record.FirmwareManifest) (device.StagedImage, error) {
	s, err := f.SlotInstaller.Stage(m)
	if err != nil {
		return nil, err
	}
	return failingStage{s}, nil
}

type failingStage struct{ device.StagedImage }

func (failingStage) Install() error { return errors.New("self-test of the new image failed") }

// Installs that fail on two devices are reported (with the reason); the
// rollout's failure threshold (2) aborts it on the ledger, and the other
// devices are then not offered the release and install nothing. A new
// rollout of the release is tried afresh. A device pinning another vendor
// key refuses the release outright.
func TestFirmwareRolloutAbort(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	class := fwClass(t)
	keys := newKeys(t, 4)
	tn.registerClass(t, class, keys...)
	tn.publish(t, class, 1, 100<<10)
	tn.rollout(t, class, 1, 100, 1, 2, true)

	devs := make([]*fwDevice, len(keys))
	for i, k := range keys {
		devs[i] = tn.fwDevice(t, k)
	}
	failing := make([]*device.FirmwareUpdater, 2)
	for i := range 2 {
		u := &device.FirmwareUpdater{Installer: failingInstaller{devs[i].slots}, Every: 1, MaxAttempts: 2}
		failing[i] = u
		r, err := u.Check(ctx, devs[i].d)
		if err != nil || r.Action != device.UpdateRetry || r.Attempt != 1 {
			t.Fatalf("device %d, first attempt: %+v %v", i, r, err)
		}
		if h := tn.firmwareHistory(t, keys[i].ID()); len(h) != 0 {
			t.Fatalf("a first failed attempt was reported: %q", h)
		}
		// Back-off: the second attempt is at the next check (1 apart),
		// the third would be 2 apart; 2 attempts give up and report.
		r, err = u.Check(ctx, devs[i].d)
		if err != nil || r.Action != device.UpdateGaveUp || r.Attempt != 2 {
			t.Fatalf("device %d, second attempt: %+v %v", i, r, err)
		}
		if run, _ := devs[i].slots.Running(); run.Seq != 0 {
			t.Fatalf("device %d runs %+v after a failed install", i, run)
		}
		h := tn.firmwareHistory(t, keys[i].ID())
		if len(h) != 1 || !strings.Contains(h[0], "FAILED") || !strings.Contains(h[0], "self-test of the new image failed") {
			t.Fatalf("device %d history: %q", i, h)
		}
	}
	ro := tn.rolloutRecord(t, class)
	if ro.Status != record.RolloutAborted || ro.Failed != 2 {
		t.Fatalf("rollout after 2 failures: %s, %d failed", ro.Status, ro.Failed)
	}
	tn.applied(t, ro.Aborted)
	for i := 2; i < 4; i++ {
		u := &device.FirmwareUpdater{Installer: devs[i].slots, Every: 1}
		r, err := u.Check(ctx, devs[i].d)
		if err != nil || r.Action != device.UpdateNone || r.Offer.Offered || !strings.Contains(r.Offer.Reason, "aborted") {
			t.Fatalf("device %d after the abort: %+v %v", i, r, err)
		}
		if run, _ := devs[i].slots.Running(); run.Seq != 0 {
			t.Fatalf("device %d installed %+v from an aborted rollout", i, run)
		}
	}

	// The organisation rolls the release out anew: a device that gave up on
	// it tries again, a healthy one installs it.
	tn.rollout(t, class, 1, 100, 1, 10, false)
	if r, err := failing[0].Check(ctx, devs[0].d); err != nil || r.Action != device.UpdateRetry || r.Attempt != 1 {
		t.Fatalf("a new rollout of the release given up on: %+v %v; want a first attempt", r, err)
	}
	if r, err := (&device.FirmwareUpdater{Installer: devs[2].slots, Every: 1}).Check(ctx, devs[2].d); err != nil || r.Action != device.UpdateInstalled {
		t.Fatalf("a healthy device under the new rollout: %+v %v", r, err)
	}

	// A pinned vendor key that is not the release signer's: refused at once.
	other := newKeys(t, 1)[0]
	class2 := fwClass(t)
	k := newKeys(t, 1)[0]
	tn.registerClass(t, class2, k)
	tn.publish(t, class2, 1, 10<<10)
	tn.rollout(t, class2, 1, 100, 1, 5, true)
	d := tn.fwDevice(t, k)
	u := &device.FirmwareUpdater{Installer: d.slots, Every: 1, VendorKeys: map[string]identity.PublicKey{devnet.DemoOrg: other.Public()}}
	r, err := u.Check(ctx, d.d)
	if err != nil || r.Action != device.UpdateGaveUp || !errors.Is(r.Err, firmware.ErrBadSignature) {
		t.Fatalf("a release not signed by the pinned key: %+v %v", r, err)
	}
}

// rolloutLiar is a proxy in front of a real node's API that changes the
// rollout record in every proof it passes on: "push" widens the wave to
// every device, "omit" answers that there is none.
func rolloutLiar(t *testing.T, upstream, how string, lied *atomic.Int32) *httptest.Server {
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
		if json.Unmarshal(body, &pr) == nil && bytes.HasPrefix(pr.Key, []byte("fr/")) && pr.Value != nil {
			var ro record.FirmwareRolloutRecord
			if record.Unmarshal(pr.Value, &ro) == nil {
				lied.Add(1)
				if how == "omit" {
					pr.Value = nil
				} else {
					ro.Percent, ro.BlocksPerWave = 100, 1
					pr.Value, _ = record.Marshal(&ro)
				}
				body, _ = json.Marshal(&pr)
			}
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

// A gateway that widens the rollout to push a release on a device outside
// its wave, or that hides the rollout, is caught by the proof check and the
// next gateway asked: the device learns the truth and installs nothing.
func TestOfferedFirmwareLyingGateway(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	class := fwClass(t)
	tn.publish(t, class, 1, 8<<10)
	ro := tn.rollout(t, class, 1, 1, 100000, 3, true) // 1 % a wave, waves 100,000 blocks apart: bucket 0 only
	var k *identity.Key
	for k == nil || ro.Bucket(k.ID()) == 0 {
		k = newKeys(t, 1)[0]
	}
	tn.registerClass(t, class, k)
	for _, how := range []string{"push", "omit"} {
		var lied atomic.Int32
		liar := rolloutLiar(t, tn.d.APIURL(1), how, &lied)
		alone := tn.fwDevice(t, k, device.Gateway{API: liar.URL})
		if _, err := alone.d.OfferedFirmware(ctx); !errors.Is(err, record.ErrBadProof) {
			t.Fatalf("%s, the liar alone: %v; want a proof refusal", how, err)
		}
		d := tn.fwDevice(t, k, device.Gateway{API: liar.URL}, tn.gw(2))
		u := &device.FirmwareUpdater{Installer: d.slots, Every: 1}
		r, err := u.Check(ctx, d.d)
		if err != nil {
			t.Fatalf("%s, with an honest gateway: %v", how, err)
		}
		if r.Offer.Offered || r.Offer.Rollout == nil || r.Offer.Rollout.Percent != 1 || r.Action != device.UpdateNone || lied.Load() < 2 {
			t.Fatalf("%s: offer %+v, action %s, %d lies told", how, r.Offer, r.Action, lied.Load())
		}
		if d.d.Gateway().API != tn.gw(2).API {
			t.Errorf("%s: the device uses %s after the lie", how, d.d.Gateway().API)
		}
		if run, _ := d.slots.Running(); run.Seq != 0 {
			t.Fatalf("%s: installed %+v", how, run)
		}
	}
}

// A device with a file service on its own mesh node fetches the image over
// bitswap from the gateway it is connected to, with no gateway's content
// endpoint reachable; the image is checked the same way.
func TestFetchFirmwareOverMesh(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	class := fwClass(t)
	k := newKeys(t, 1)[0]
	tn.registerClass(t, class, k)
	img := tn.publish(t, class, 1, 600<<10) // added on node 0
	tn.rollout(t, class, 1, 100, 1, 3, true)

	// Proofs through node 0's API; its content endpoint is cut off.
	u, _ := url.Parse(tn.d.APIURL(0))
	var contentAsked atomic.Int32
	proxy := httputil.NewSingleHostReverseProxy(u)
	noContent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/content/") {
			contentAsked.Add(1)
			http.Error(w, "no content here", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(noContent.Close)
	dev := tn.fwDevice(t, k, device.Gateway{API: noContent.URL})
	_, addr, err := dev.d.GatewayMeshAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := meshnode.Start(dev.d, meshnode.Options{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	svc, err := files.New(files.Config{Host: n.Host(), Routing: n.Routing()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	dev.d.UseFiles(meshnode.Files(svc))

	u2 := &device.FirmwareUpdater{Installer: dev.slots, Every: 1}
	r, err := u2.Check(ctx, dev.d)
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != device.UpdateInstalled || r.Running.Seq != 1 {
		t.Fatalf("over the mesh: %s (%v)", r.Action, r.Err)
	}
	if contentAsked.Load() != 0 {
		t.Errorf("the gateway's content endpoint was asked %d times; want the mesh only", contentAsked.Load())
	}
	if b, err := os.ReadFile(dev.slots.RunningImage()); err != nil || !bytes.Equal(b, img.data) {
		t.Fatalf("the installed image is not the release's (%v)", err)
	}

	// A mesh node with no peer finds no provider: the device falls back on
	// its gateway within its timeout.
	k2 := newKeys(t, 1)[0]
	tn.registerClass(t, class, k2)
	dir := t.TempDir()
	d2, err := device.New(k2, device.WithGateways(tn.gw(1)), device.WithChainID(tn.d.ChainID()), device.WithTrust(tn.trust),
		device.WithStateDir(dir), device.WithTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	lone, err := meshnode.Start(d2, meshnode.Options{Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lone.Close() })
	svc2, err := files.New(files.Config{Host: lone.Host()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc2.Close() })
	d2.UseFiles(meshnode.Files(svc2))
	slots, err := device.OpenSlots(filepath.Join(dir, device.FirmwareSlotsDir), device.Firmware{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err = (&device.FirmwareUpdater{Installer: slots, Every: 1}).Check(ctx, d2)
	if err != nil || r.Action != device.UpdateInstalled {
		t.Fatalf("with a lone mesh node: %+v %v", r, err)
	}
	t.Logf("installed through the gateway after the mesh found nothing: %v", time.Since(start).Round(time.Millisecond))
}
