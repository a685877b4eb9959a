package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
)

// FleetBenchConfig sizes the fleet benchmark (FleetBench).
type FleetBenchConfig struct {
	Devices   int              // simulated devices; default 1,000
	Gateways  int              // validators, each with a gateway; default 4
	Wake      time.Duration    // each device's wake interval; default 30 s
	Jitter    float64          // fraction of Wake added at random to each sleep; default 0.2
	Transport device.Transport // default HTTP
	Run       time.Duration    // measured time, once every device has woken; default 60 s
	Baseline  time.Duration    // the devnet alone, measured first; default 10 s
}

func (c *FleetBenchConfig) defaults() {
	if c.Devices <= 0 {
		c.Devices = 1000
	}
	if c.Gateways <= 0 {
		c.Gateways = 4
	}
	if c.Wake <= 0 {
		c.Wake = 30 * time.Second
	}
	if c.Jitter <= 0 {
		c.Jitter = 0.2
	}
	if c.Transport == "" {
		c.Transport = device.HTTP
	}
	if c.Run <= 0 {
		c.Run = time.Minute
	}
	if c.Baseline <= 0 {
		c.Baseline = 10 * time.Second
	}
}

// FleetResult is what FleetBench measured.
type FleetResult struct {
	Config   FleetBenchConfig
	Register time.Duration // keys made and devices registered in bulk (RegisterAll)
	Stop     time.Duration // every agent stopped and device closed
	Elapsed  time.Duration // the measured run

	// Offered is the envelopes/s the devices would send if every gateway
	// answered at once: Devices / (Wake·(1+Jitter/2)).
	Offered float64
	// Acked is the envelopes/s the devices saw acknowledged (one reading
	// each); GatewayStored the envelopes/s the gateways stored.
	Acked, GatewayStored float64
	// Totals from the fleet's start to the end of the run: what the
	// devices saw acknowledged and what the gateways stored, refused by
	// the limits, rejected and refused when overloaded.
	AckedTotal, StoredTotal, Limited, Rejected, Overloaded uint64

	CPUBase, CPU float64 // cores: the devnet alone, then the whole process with the fleet
	// CPUPerDevice is the process's CPU above the devnet alone per device
	// and per second (devices' signing and HTTP, gateways' verification,
	// storage, anchoring).
	CPUPerDevice time.Duration
	// HeapPerDevice is the heap's growth, after a GC, from before the
	// fleet to after every device woke once, per device.
	HeapPerDevice  float64
	Goroutines     int // goroutines with the fleet running
	GoroutinesBase int
	Load           string // /proc/loadavg at the end
}

// FleetBench starts a devnet of Gateways validators in dir (FastBlocks,
// per-source limits raised so that one host can carry the fleet, the
// per-device limits as in production), measures it alone for Baseline,
// then registers Devices simulated devices in bulk and runs one agent per
// device, spread over the gateways, for Run once every device has woken.
// Progress goes to log.
func FleetBench(ctx context.Context, dir string, c FleetBenchConfig, log io.Writer) (*FleetResult, error) {
	c.defaults()
	if log == nil {
		log = io.Discard
	}
	res := &FleetResult{Config: c, Offered: float64(c.Devices) / (c.Wake.Seconds() * (1 + c.Jitter/2))}
	base, err := chain.FreePortBase(c.Gateways)
	if err != nil {
		return nil, err
	}
	// Every device sends from 127.0.0.1: each gateway takes 10 times its
	// share of the offered rate from that address (at least 1,000/s).
	perGW := res.Offered / float64(c.Gateways)
	rate := max(1000, 10*perGW)
	fmt.Fprintf(log, "fleet: starting a devnet of %d gateways (per-address limit %.0f envelopes/s, per-device limit as in production) ...\n", c.Gateways, rate)
	d, err := devnet.Start(devnet.Config{Home: filepath.Join(dir, "devnet"), Validators: c.Gateways, BasePort: base,
		FastBlocks: true, NoSync: true, SourceLimits: devnet.SourceLimitsFor(rate, int(2*rate))})
	if err != nil {
		return nil, err
	}
	defer d.Stop()
	if err := d.WaitForHeight(ctx, 2); err != nil {
		return nil, err
	}
	admin, err := devnet.Keystore(d.Home()).Load(devnet.DemoAdminKey, nil)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "fleet: the devnet alone for %v ...\n", c.Baseline)
	res.GoroutinesBase = runtime.NumGoroutine()
	cpu0, t0 := cpuTime(), time.Now()
	if err := sleepCtx(ctx, c.Baseline); err != nil {
		return nil, err
	}
	res.CPUBase = (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)

	fmt.Fprintf(log, "fleet: making and registering %d devices ...\n", c.Devices)
	t0 = time.Now()
	fl, err := device.StartFleet(ctx, device.FleetConfig{Size: c.Devices, Dir: filepath.Join(dir, "fleet"), ChainID: d.ChainID(),
		Org: devnet.DemoOrg, Admin: admin, Gateways: d.Gateways(), Transports: []device.Transport{c.Transport},
		Wake: c.Wake, Jitter: c.Jitter})
	if err != nil {
		return nil, err
	}
	res.Register = time.Since(t0)
	stopped := false
	defer func() {
		if !stopped {
			fl.Stop()
		}
	}()
	warm := time.Duration(float64(c.Wake) * (1 + c.Jitter))
	fmt.Fprintf(log, "fleet: registered in %v; %.1f envelopes/s offered; waiting %v for every device to wake once ...\n",
		res.Register.Round(time.Millisecond), res.Offered, warm.Round(time.Second))
	if err := sleepCtx(ctx, warm); err != nil {
		return nil, err
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	res.Goroutines = runtime.NumGoroutine()
	res.HeapPerDevice = float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / float64(c.Devices)

	fmt.Fprintf(log, "fleet: measuring for %v ...\n", c.Run)
	env0, _ := fl.Sent()
	st0 := gatewayStats(d)
	cpu0, t0 = cpuTime(), time.Now()
	if err := sleepCtx(ctx, c.Run); err != nil {
		return nil, err
	}
	cpu := cpuTime() - cpu0
	env1, _ := fl.Sent()
	st1 := gatewayStats(d)
	res.Elapsed = time.Since(t0)
	sec := res.Elapsed.Seconds()
	res.Acked = float64(env1-env0) / sec
	res.GatewayStored = float64(st1.Accepted-st0.Accepted) / sec
	res.AckedTotal, res.StoredTotal = uint64(env1), st1.Accepted
	res.Limited, res.Rejected, res.Overloaded = st1.Limited, st1.Rejected, st1.Overloaded
	res.CPU = cpu.Seconds() / sec
	res.CPUPerDevice = time.Duration(max(res.CPU-res.CPUBase, 0) * float64(time.Second) / float64(c.Devices))
	res.Load = loadAverage()
	fmt.Fprintf(log, "fleet: measured; stopping %d devices and the devnet ...\n", c.Devices)
	t0 = time.Now()
	stopped = true
	if err := fl.Stop(); err != nil {
		return nil, fmt.Errorf("stopping the fleet: %w", err)
	}
	res.Stop = time.Since(t0)
	if res.AckedTotal == 0 {
		return res, errors.New("fleet: no envelope was acknowledged")
	}
	return res, nil
}

// gatewayStats sums the running gateways' counters.
func gatewayStats(d *devnet.Devnet) (s struct{ Accepted, Limited, Rejected, Overloaded uint64 }) {
	for i := range d.Size() {
		if gw := d.Gateway(i); gw != nil {
			st := gw.Stats()
			s.Accepted += st.Accepted
			s.Limited += st.Limited
			s.Rejected += st.Rejected
			s.Overloaded += st.Overloaded
		}
	}
	return s
}

// WriteReport prints the result.
func (r *FleetResult) WriteReport(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "fleet of %d devices over %s across %d gateways, waking every %v (jitter %.0f%%), measured for %v\n",
		c.Devices, c.Transport, c.Gateways, c.Wake, 100*c.Jitter, r.Elapsed.Round(time.Second))
	fmt.Fprintf(w, "registered in bulk in       %v (stopped in %v)\n", r.Register.Round(time.Millisecond), r.Stop.Round(time.Millisecond))
	fmt.Fprintf(w, "envelopes/s offered         %.1f\n", r.Offered)
	fmt.Fprintf(w, "envelopes/s acknowledged    %.1f (%.1f%% of offered)\n", r.Acked, 100*r.Acked/r.Offered)
	fmt.Fprintf(w, "envelopes/s gateways stored %.1f\n", r.GatewayStored)
	fmt.Fprintf(w, "totals                      %d acknowledged to devices, %d stored by gateways, %d rate-limited, %d rejected, %d overloaded\n",
		r.AckedTotal, r.StoredTotal, r.Limited, r.Rejected, r.Overloaded)
	fmt.Fprintf(w, "CPU                         %.1f%% of a core (devnet alone %.1f%%)\n", 100*r.CPU, 100*r.CPUBase)
	fmt.Fprintf(w, "CPU per device              %.1f µs/s\n", float64(r.CPUPerDevice.Nanoseconds())/1e3)
	fmt.Fprintf(w, "heap per device             %.1f KB\n", r.HeapPerDevice/1e3)
	fmt.Fprintf(w, "goroutines                  %d (devnet alone %d)\n", r.Goroutines, r.GoroutinesBase)
	fmt.Fprintf(w, "load average                %s\n", r.Load)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage is the first three fields of /proc/loadavg, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
