package qemu_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/files/firmware"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// target is one architecture the minimal device program is built for.
type target struct {
	name string   // as in the table
	env  []string // GOARCH and its variant
	qemu string   // the qemu-user emulator that runs it; "" native (amd64 hosts) or not run
}

var targets = []target{
	{"amd64", []string{"GOARCH=amd64"}, ""},
	{"arm (GOARM=7)", []string{"GOARCH=arm", "GOARM=7"}, "qemu-arm"},
	{"mipsle (softfloat)", []string{"GOARCH=mipsle", "GOMIPS=softfloat"}, "qemu-mipsel"},
	{"arm (GOARM=5)", []string{"GOARCH=arm", "GOARM=5"}, ""},
	{"arm (GOARM=6)", []string{"GOARCH=arm", "GOARM=6"}, ""},
	{"arm64", []string{"GOARCH=arm64"}, ""},
	{"riscv64", []string{"GOARCH=riscv64"}, ""},
}

// boardTags are the build tags of a board's thingnet-device: without
// grpcnotrace the binary is 5–6 MiB larger (cmd/thingnet-device's
// TestMinimalDeps, docs/device-sdk.md).
const boardTags = "grpcnotrace"

// run is what one architecture's runs measured.
type run struct {
	size                         int64
	vmhwm                        int64 // KiB, of the process (qemu's under emulation)
	guestRSS                     int64 // KiB, peak resident of the guest's own mappings (under emulation)
	goSys                        int64 // KiB, the Go runtime's own (guest) memory
	state, slots                 int64 // bytes on disk
	signUS, fetchUS, verifyUS    float64
	validators                   int
	ran                          bool
	readings                     int
	firstSeq, lastSeq, secondSeq uint64
}

// TestDeviceOnBoards builds the minimal device program for the
// architectures IoT boards have and runs the linux/arm and linux/mipsle
// builds under Debian's qemu-user (and the amd64 build natively, as the
// reference) against a devnet of 4 validators, each as a board would: it
// is claimed with a code, sends signed readings over MQTT that a gateway
// verifies and acknowledges, executes a command the ledger proves is for it, takes a
// firmware update through its image slots, then restarts on its state
// directory and goes on over CoAP (same key, higher sequence numbers, the
// new firmware running). It measures each and logs the table of
// docs/device-sdk.md. A long test: THINGNET_E2E=1 (scripts/e2e) runs it.
func TestDeviceOnBoards(t *testing.T) {
	if os.Getenv("THINGNET_E2E") != "1" {
		t.Skip("builds for 7 architectures and runs 2 under qemu-user: run it with THINGNET_E2E=1 (scripts/e2e -run TestDeviceOnBoards)")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("the reference run is native linux/amd64; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	for _, tg := range targets {
		if tg.qemu != "" {
			if _, err := exec.LookPath(tg.qemu); err != nil {
				t.Fatalf("%s: %v (apt-get install qemu-user; scripts/e2e installs it)", tg.qemu, err)
			}
		}
	}
	ctx := testutil.Context(t, 25*time.Minute)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bins := t.TempDir()
	results := make([]run, len(targets))
	for i, tg := range targets {
		out := filepath.Join(bins, "thingnet-device-"+strconv.Itoa(i))
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", boardTags, "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/thingnet-device")
		cmd.Dir = root
		cmd.Env = append(append(os.Environ(), "GOOS=linux", "CGO_ENABLED=0"), tg.env...)
		start := time.Now()
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: go build: %v\n%s", tg.name, err, b)
		}
		fi, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		results[i].size = fi.Size()
		t.Logf("%s: built, %.1f MiB stripped (%v)", tg.name, mib(fi.Size()), time.Since(start).Round(time.Second))
	}

	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	d, err := devnet.Start(devnet.Config{Home: home, Validators: 4, BasePort: base, FastBlocks: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	c := client.New(d.APIURL(0))
	h, err := c.Header(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := devnet.Keystore(home).Load(devnet.DemoAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &board{t: t, ctx: ctx, d: d, c: c, admin: admin, trust: fmt.Sprintf("2:%X", h.SignedHeader.Hash())}

	for i, tg := range targets {
		if i > 0 && tg.qemu == "" {
			continue
		}
		t.Run(strings.Fields(tg.name)[0], func(t *testing.T) {
			b.t = t
			results[i] = b.run(filepath.Join(bins, "thingnet-device-"+strconv.Itoa(i)), tg, results[i])
		})
		b.t = t
	}
	table(t, results)
	for i, r := range results {
		if r.size > 20<<20 {
			t.Errorf("%s: %.1f MiB stripped; the goal is 20 MiB", targets[i].name, mib(r.size))
		}
		if targets[i].name != "arm (GOARM=7)" {
			continue
		}
		if r.guestRSS == 0 || r.guestRSS > 32<<10 {
			t.Errorf("linux/arm: %d KiB resident (the guest's mappings); the goal is at most 32 MiB", r.guestRSS)
		}
	}
}

// board runs the device program as one board.
type board struct {
	t     *testing.T
	ctx   context.Context
	d     *devnet.Devnet
	c     *client.Client
	admin *identity.Key
	trust string
}

// proc is the device program running.
type proc struct {
	cmd       *exec.Cmd
	out, errs testutil.Buffer
	done      chan error
}

func (b *board) start(bin string, tg target, args ...string) *proc {
	t := b.t
	name := bin
	if tg.qemu != "" {
		// The guest's address space at a fixed base: its own mappings
		// are told apart from the emulator's (guestRSS).
		args = append([]string{"-B", fmt.Sprintf("%#x", guestBase), bin}, args...)
		name = tg.qemu
	}
	p := &proc{cmd: exec.Command(name, args...), done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s %s:\n%s\nstderr:\n%s", name, strings.Join(args, " "), p.out.String(), p.errs.String())
		}
	})
	return p
}

// match waits until the output matches re and returns the submatches.
func (b *board) match(p *proc, re string) []string {
	b.t.Helper()
	var m []string
	rx := regexp.MustCompile(re)
	testutil.WaitFor(b.t, b.ctx, "output matching "+re, func() bool {
		if m = rx.FindStringSubmatch(p.out.String()); m != nil {
			return true
		}
		select {
		case err := <-p.done:
			p.done <- err
			b.t.Fatalf("the program ended (%v) before printing %s", err, re)
		default:
		}
		return false
	})
	return m
}

// stop sends SIGTERM and waits for a clean exit.
func (b *board) stop(p *proc) {
	b.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			b.t.Fatalf("the program exited with %v", err)
		}
	case <-b.ctx.Done():
		b.t.Fatal("the program did not stop")
	}
}

func (b *board) send(msg record.Msg) {
	b.t.Helper()
	res, err := b.c.Send(b.ctx, b.admin, "", msg, true)
	if err != nil || res.Code != 0 {
		b.t.Fatalf("%T: %+v, %v", msg, res, err)
	}
}

// release publishes a firmware image for class and rolls it out to all
// of the demo organisation's devices of the class.
func (b *board) release(class string) []byte {
	t := b.t
	img := make([]byte, 256<<10)
	rand.Read(img)
	a, err := b.d.Files(0).Add(b.ctx, bytes.NewReader(img), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	raw, err := firmware.Sign(b.admin, b.admin.ID(), &record.FirmwareManifest{Vendor: devnet.DemoOrg, Class: class, Version: "1.0", Seq: 1,
		Digest: sum[:], Size: uint64(len(img)), CID: a.CID.String()})
	if err != nil {
		t.Fatal(err)
	}
	b.send(&record.FirmwareRelease{Manifest: raw})
	b.send(&record.FirmwareApprove{Org: devnet.DemoOrg, Vendor: devnet.DemoOrg, Class: class, Seq: 1})
	b.send(&record.FirmwareRollout{Org: devnet.DemoOrg, Vendor: devnet.DemoOrg, Class: class, Seq: 1, Percent: 100, BlocksPerWave: 1, MaxFailures: 1})
	return sum[:]
}

var seqRE = regexp.MustCompile(`sent seq \[(\d+)\] to \S+ over (\w+)`)

// seqs are the sequence numbers the program reports sent over transport.
func seqs(out, transport string) []uint64 {
	var s []uint64
	for _, m := range seqRE.FindAllStringSubmatch(out, -1) {
		if m[2] == transport {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			s = append(s, n)
		}
	}
	return s
}

func (b *board) run(bin string, tg target, r run) run {
	t := b.t
	arch := strings.TrimPrefix(tg.env[0], "GOARCH=")
	class := "board-" + arch
	digest := b.release(class)
	state := t.TempDir()
	gw := b.d.APIURL(1) + ",mqtt=" + b.d.MQTTAddr(1) + ",coap=" + b.d.CoAPAddr(1)
	common := []string{"-state", state, "-chain", b.d.ChainID(), "-org", devnet.DemoOrg, "-gateway", gw,
		"-wake", "1s", "-trust", b.trust, "-firmware-every", "1", "-stats"}
	started := time.Now()

	// First boot: claimed, readings over MQTT, a proved command, the update.
	p := b.start(bin, tg, append(common, "-transport", "mqtt")...)
	stopSampling := make(chan struct{})
	sampled := make(chan int64, 1)
	if tg.qemu != "" {
		go func() { sampled <- sampleGuestRSS(p.cmd.Process.Pid, stopSampling) }()
	} else {
		sampled <- 0
	}
	id := b.match(p, `new key: device id (\S+)`)[1]
	code := b.match(p, `thingnet device claim (\S+)`)[1]
	claim, err := device.ParseClaimCode(code)
	if err != nil {
		t.Fatal(err)
	}
	if err := claim.Check(b.d.ChainID(), devnet.DemoOrg, time.Now()); err != nil || claim.Device != id {
		t.Fatalf("the claim code of %s: %v", claim.Device, err)
	}
	if _, err := device.RegisterAll(b.ctx, b.c, b.admin, b.d.ChainID(), []*record.DeviceRegister{claim.Register(class, "", nil)}); err != nil {
		t.Fatal(err)
	}
	// A gateway acknowledges a reading once it has checked its signature
	// (made by the emulated CPU) against the key the ledger holds.
	b.match(p, `sent seq \[\d+\] to \S+ over mqtt`)
	t.Logf("%s: claimed and sending over MQTT %v after it started", tg.name, time.Since(started).Round(100*time.Millisecond))

	// A command for it, through an agreement: proved, then executed.
	b.send(&record.AgreementDeploy{Source: []byte(testutil.SwitchAgreement), Parties: map[string]string{"lamp": "device:" + id, "owner": "org:" + devnet.DemoOrg}})
	var ags struct {
		Items []record.Agreement `json:"items"`
	}
	if err := b.c.Get(b.ctx, "/v1/agreements?limit=1000", &ags); err != nil || len(ags.Items) == 0 {
		t.Fatalf("agreements: %v", err)
	}
	ag := ags.Items[len(ags.Items)-1].ID
	b.send(&record.AgreementCall{ID: ag, Transition: "toggle"})
	if m := b.match(p, `command \d+ of agreement (\d+) \(toggle\): on`); m[1] != fmt.Sprint(ag) {
		t.Errorf("executed a command of agreement %s; want %d", m[1], ag)
	}

	// The firmware update, into the slots in its state directory.
	b.match(p, `runs firmware factory \(seq 0\)`)
	if m := b.match(p, `installed firmware 1\.0 \(seq 1, sha256 ([0-9a-f]+)\)`); m[1] != fmt.Sprintf("%x", digest) {
		t.Errorf("installed an image of sha256 %s; the release's is %x", m[1], digest)
	}
	r.vmhwm = vmhwm(t, p.cmd.Process.Pid)
	close(stopSampling)
	r.guestRSS = <-sampled
	b.stop(p)
	out1 := p.out.String()
	sent := seqs(out1, "mqtt")
	if m := regexp.MustCompile(`stats: cpu_ms=\d+ go_sys_kib=(\d+)`).FindStringSubmatch(out1); m != nil {
		r.goSys, _ = strconv.ParseInt(m[1], 10, 64)
	}
	r.state, r.slots = stateSize(t, state)

	// Second boot on the same state: no new key, no claim, the new
	// firmware running, sequence numbers above the first boot's, over CoAP.
	p = b.start(bin, tg, append(common, "-transport", "coap")...)
	b.match(p, `runs firmware 1\.0 \(seq 1\)`)
	b.match(p, `sent seq \[\d+\] to \S+ over coap`)
	b.stop(p)
	out2 := p.out.String()
	if strings.Contains(out2, "new key") || strings.Contains(out2, "thingnet device claim") {
		t.Errorf("the restarted device made a new key or asked to be claimed:\n%s", out2)
	}
	again := seqs(out2, "coap")
	if len(sent) == 0 || len(again) == 0 || again[0] <= sent[len(sent)-1] {
		t.Errorf("sequence numbers: first boot %v, second %v; want the second above the first", sent, again)
	} else {
		r.firstSeq, r.lastSeq, r.secondSeq = sent[0], sent[len(sent)-1], again[0]
	}
	r.readings = len(sent) + len(again)
	var reg struct {
		Record record.Device `json:"record"`
	}
	testutil.WaitFor(t, b.ctx, "the ledger to know the device runs 1.0", func() bool {
		return b.c.Get(b.ctx, "/v1/devices/"+id, &reg) == nil && reg.Record.Firmware == "1.0"
	})

	// The costs, in CPU time of this process.
	p = b.start(bin, tg, append(common, "-measure", "2s")...)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("-measure: %v\n%s", err, p.errs.String())
		}
	case <-b.ctx.Done():
		t.Fatal("-measure did not end")
	}
	m := regexp.MustCompile(`measure: sign_us=([\d.]+) \(\d+\) header_fetch_us=([\d.]+) \(\d+\) header_verify_us=([\d.]+) \(\d+\)`).FindStringSubmatch(p.out.String())
	v := regexp.MustCompile(`measure: \S+, (\d+) validators`).FindStringSubmatch(p.out.String())
	if m == nil || v == nil {
		t.Fatalf("-measure printed:\n%s", p.out.String())
	}
	r.signUS, _ = strconv.ParseFloat(m[1], 64)
	r.fetchUS, _ = strconv.ParseFloat(m[2], 64)
	r.verifyUS, _ = strconv.ParseFloat(m[3], 64)
	r.validators, _ = strconv.Atoi(v[1])
	r.ran = true
	t.Logf("%s: %s", tg.name, strings.TrimSpace(p.out.String()))
	return r
}

// vmhwm is the peak resident memory of process pid in KiB.
func vmhwm(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// guestBase is where qemu-user puts the 32-bit guest's 4 GiB address space
// in its own (-B).
const guestBase = 0x100000000000

// sampleGuestRSS returns the largest resident size, in KiB, of the
// mappings in the guest's address space of qemu process pid, sampled every
// 100 ms until stop is closed: the board's own memory (Go heap, stacks,
// the binary's pages it touched), without the emulator's (its code,
// its translation cache).
func sampleGuestRSS(pid int, stop <-chan struct{}) int64 {
	var peak int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if n := guestRSS(pid); n > peak {
			peak = n
		}
		select {
		case <-stop:
			return peak
		case <-tick.C:
		}
	}
}

func guestRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0
	}
	var total int64
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && len(f) >= 5 {
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && start >= guestBase && end <= guestBase+1<<32
			continue
		}
		if in && f[0] == "Rss:" && len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			total += n
		}
	}
	return total
}

// stateSize is the bytes of the device's state directory: its own files,
// and the firmware slots apart.
func stateSize(t *testing.T, dir string) (state, slots int64) {
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(dir, path); strings.HasPrefix(rel, device.FirmwareSlotsDir+string(filepath.Separator)) {
			slots += fi.Size()
		} else {
			state += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state, slots
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// table logs the table of docs/device-sdk.md.
func table(t *testing.T, rs []run) {
	ref := rs[0]
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n| linux/… | stripped | peak resident (VmHWM) | the board's own (guest mappings) | Go runtime memory | CPU per signed reading | CPU per header update (fetch + verify, %d validators) | state on disk (+ firmware slots) |\n", ref.validators)
	sb.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for i, r := range rs {
		tg := targets[i]
		if !r.ran {
			fmt.Fprintf(&sb, "| %s | %.1f MiB | — | — | — | — | — | — |\n", tg.name, mib(r.size))
			continue
		}
		how := "native"
		if tg.qemu != "" {
			how = tg.qemu + ", emulator included"
		}
		guest := "(the same)"
		if tg.qemu != "" {
			guest = fmt.Sprintf("%.1f MiB", float64(r.guestRSS)/1024)
		}
		fmt.Fprintf(&sb, "| %s | %.1f MiB | %.1f MiB (%s) | %s | %.1f MiB | %.0f µs (×%.1f) | %.0f + %.0f µs (×%.1f) | %d B (+ %.0f KiB) |\n",
			tg.name, mib(r.size), float64(r.vmhwm)/1024, how, guest, float64(r.goSys)/1024,
			r.signUS, r.signUS/ref.signUS, r.fetchUS, r.verifyUS, (r.fetchUS+r.verifyUS)/(ref.fetchUS+ref.verifyUS),
			r.state, float64(r.slots)/1024)
	}
	t.Log(sb.String())
}
