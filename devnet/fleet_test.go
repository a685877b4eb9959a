package devnet

import (
	"context"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// TestFleet runs a small simulated fleet for a few seconds: every device's
// readings are served by the API of the gateway it prefers, one reading's
// anchor verifies with the device's light client, and a restart of the
// fleet reuses the same devices.
func TestFleet(t *testing.T) {
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	d := startDevnet(t, t.TempDir(), base)
	defer d.Stop()
	ctx := testutil.Context(t, 2*time.Minute)
	var mu sync.Mutex
	first := map[int]*device.Receipt{}
	var commands []record.Command
	fl, err := d.StartFleet(ctx, FleetConfig{Size: 6, Wake: 500 * time.Millisecond, Agreement: true, OnSend: func(i int, rc *device.Receipt) {
		mu.Lock()
		defer mu.Unlock()
		if first[i] == nil {
			first[i] = rc
		}
	}, OnCommand: func(i int, c record.Command) error {
		mu.Lock()
		defer mu.Unlock()
		if i != 1 {
			t.Errorf("device %d got command %+v; the agreement commands device 1", i, c)
		}
		commands = append(commands, c)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if fl.Registered != 6 {
		t.Errorf("registered %d devices; want 6", fl.Registered)
	}
	testutil.WaitFor(t, ctx, "every device to send", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(first) == 6
	})
	for i, fd := range fl.Devices {
		mu.Lock()
		gw := first[i].Gateway // its preferred one, unless that had not applied its registration yet
		mu.Unlock()
		c := client.New(gw.API).WithIdentity(&client.Identity{Key: fd.Device.Key()}) // the device reads its own readings
		var page struct {
			Items []client.ReadingItem `json:"items"`
		}
		if err := c.Get(ctx, "/v1/readings?device="+url.QueryEscape(fd.Device.ID()), &page); err != nil || len(page.Items) == 0 {
			t.Errorf("%s (%s over %s): %d readings on gateway %s, %v", fd.Name, fd.Class, fd.Transport, len(page.Items), gw.API, err)
		}
	}
	mu.Lock()
	rc := first[1]
	mu.Unlock()
	for {
		a, err := fl.Devices[1].Device.WasAnchored(ctx, rc)
		if err != nil {
			t.Fatalf("WasAnchored: %v", err)
		}
		if a.Anchored {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The sensor's readings cross the agreement's threshold: the fan is
	// commanded (reading → anchor → relayer → agreement → proved command).
	testutil.WaitFor(t, ctx, "the agreement to command the fan", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(commands) > 0
	})
	mu.Lock()
	if p := string(commands[0].Payload); p != "on" && p != "off" || commands[0].Agreement != fl.Agreement {
		t.Errorf("command %+v", commands[0])
	}
	mu.Unlock()
	// A ping job to the fleet's first device is run and counted.
	admin, err := Keystore(d.Home()).Load(DemoAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := client.New(d.APIURL(0))
	if _, err := cl.Send(ctx, admin, "", &record.JobCreate{Org: DemoOrg, Command: "ping", Target: record.JobTarget{Devices: []string{fl.Devices[0].Device.ID()}},
		Waves: 1, BlocksPerWave: 1, MaxFailures: 1, TimeoutBlocks: 1000}, true); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, ctx, "the ping job done", func() bool {
		js, err := cl.Jobs(ctx, DemoOrg)
		return err == nil && len(js) > 0 && js[len(js)-1].State == record.JobDone && js[len(js)-1].Succeeded == 1
	})
	env, rd := fl.Sent()
	t.Logf("fleet of 6: %d envelopes, %d readings, %d commands", env, rd, len(commands))
	if err := fl.Stop(); err != nil {
		t.Fatal(err)
	}
	fl2, err := d.StartFleet(ctx, FleetConfig{Size: 6, Wake: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer fl2.Stop()
	if fl2.Registered != 0 || fl2.Devices[0].Device.ID() != fl.Devices[0].Device.ID() {
		t.Errorf("restarted fleet registered %d devices; want the same ones", fl2.Registered)
	}
}

// BenchmarkFleet runs a simulated fleet (FLEET_SIZE devices, default 200,
// over HTTP, waking every FLEET_WAKE, default 10 s) on a devnet for
// FLEET_RUN (default 30 s) and reports the readings per second the gateways
// acknowledged, the process's CPU time (and, measured first for as long,
// the devnet's alone), the fleet's share per device (devices, gateways'
// ingestion and anchoring), and the heap the devices hold. All
// devices send from 127.0.0.1, so each gateway's per-source rate limit (10
// envelopes/s by default) caps the total: 40 envelopes/s across 4
// gateways (`thingnet bench fleet` raises it, Config.SourceLimits, for
// 10,000 devices). Run with -benchtime 1x.
func BenchmarkFleet(b *testing.B) {
	size, wake, run := envInt("FLEET_SIZE", 200), envDuration("FLEET_WAKE", 10*time.Second), envDuration("FLEET_RUN", 30*time.Second)
	base, err := chain.FreePortBase(4)
	if err != nil {
		b.Fatal(err)
	}
	d, err := Start(Config{Home: b.TempDir(), BasePort: base, FastBlocks: true, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := d.WaitForHeight(ctx, 2); err != nil {
		b.Fatal(err)
	}
	// Baseline: the devnet alone (4 validators, gateways, anchoring).
	cpuB := cpuTime()
	time.Sleep(run)
	base0 := cpuTime() - cpuB
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	fl, err := device.StartFleet(ctx, device.FleetConfig{Size: size, Dir: b.TempDir(), ChainID: d.ChainID(), Org: DemoOrg,
		Admin: mustAdmin(b, d), Gateways: d.Gateways(), Transports: []device.Transport{device.HTTP}, Wake: wake})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d devices registered in %v", size, time.Since(t0).Round(time.Millisecond))
	time.Sleep(wake) // every device has woken once
	runtime.GC()
	runtime.ReadMemStats(&m1)
	env0, rd0 := fl.Sent()
	cpu0 := cpuTime()
	start := time.Now()
	time.Sleep(run)
	env1, rd1 := fl.Sent()
	cpu := cpuTime() - cpu0
	el := time.Since(start)
	if err := fl.Stop(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(base0.Seconds()/run.Seconds()*100, "%CPU(devnet-alone)")
	b.ReportMetric(float64((cpu-base0).Microseconds())/el.Seconds()/float64(size), "fleet-CPU-µs/s/device")
	b.ReportMetric(float64(rd1-rd0)/el.Seconds(), "readings/s")
	b.ReportMetric(float64(env1-env0)/el.Seconds(), "envelopes/s")
	b.ReportMetric(cpu.Seconds()/el.Seconds()*100, "%CPU(process)")
	b.ReportMetric(float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/float64(size), "heap-B/device")
}

func mustAdmin(b *testing.B, d *Devnet) *identity.Key {
	k, err := Keystore(d.Home()).Load(DemoAdminKey, nil)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
