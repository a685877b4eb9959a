package device_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/record"
)

// BenchmarkConfigConverge runs a simulated fleet (THINGNET_BENCH_FLEET
// devices, default 200, of one fresh class, waking every
// THINGNET_BENCH_WAKE, default 3 s, on the shared 4-validator devnet),
// makes one class-wide change and reports how long each device took to
// prove, apply and report it, in wake intervals: p50 and p99 (goal: p99 ≤
// 2). Every device proves its record, the class layer and its own layer
// with its light client at each wake, so the figure includes that cost.
func BenchmarkConfigConverge(b *testing.B) {
	n := envInt("THINGNET_BENCH_FLEET", 200)
	wake := 3 * time.Second
	if v := os.Getenv("THINGNET_BENCH_WAKE"); v != "" {
		wake, _ = time.ParseDuration(v)
	}
	tn := startNet(b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	// The fleet simulates temperature sensors: the class layer's version
	// continues above whatever the shared devnet's class holds.
	class := device.ClassTemperature
	base := uint64(0)
	if cur, err := client.New(tn.d.APIURL(0)).ConfigTarget(context.Background(), devnet.DemoOrg, record.ConfigClass, class); err == nil {
		base = cur.Version
	}
	var mu sync.Mutex
	var version uint64
	var setAt time.Time
	took := map[int]time.Duration{}
	converged := make(chan struct{}, 1)
	f, err := device.StartFleet(ctx, device.FleetConfig{Size: n, Dir: b.TempDir(), Name: freshName("bench"), ChainID: tn.d.ChainID(), Org: devnet.DemoOrg,
		Admin: tn.admin, Gateways: []device.Gateway{tn.gw(0), tn.gw(1), tn.gw(2), tn.gw(3)}, Classes: []string{class},
		Transports: []device.Transport{device.HTTP}, Wake: wake, Trust: &tn.trust,
		OnConfig: func(i int, rep *record.ConfigReport) {
			mu.Lock()
			defer mu.Unlock()
			for _, l := range rep.Layers {
				if version != 0 && l.Scope == record.ConfigClass && l.Version == version {
					if _, ok := took[i]; !ok {
						took[i] = time.Since(setAt)
						if len(took) == n {
							converged <- struct{}{}
						}
					}
				}
			}
		}})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Stop()
	time.Sleep(2 * wake) // let every device make its first wake
	b.ResetTimer()
	for i := range b.N {
		mu.Lock()
		version, setAt, took = base+uint64(i+1), time.Now(), map[int]time.Duration{}
		mu.Unlock()
		tn.send(b, tn.admin, &record.ConfigSet{Org: devnet.DemoOrg, Scope: record.ConfigClass, Name: class, Version: base + uint64(i+1),
			Settings: map[string]any{"mode": strconv.Itoa(i)}})
		select {
		case <-converged:
		case <-ctx.Done():
			b.Fatalf("%d of %d devices converged", len(took), n)
		}
	}
	b.StopTimer()
	mu.Lock()
	ds := make([]time.Duration, 0, len(took))
	for _, d := range took {
		ds = append(ds, d)
	}
	mu.Unlock()
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2])/float64(wake), "p50-wakes")
	b.ReportMetric(float64(ds[len(ds)*99/100])/float64(wake), "p99-wakes")
	b.ReportMetric(float64(n), "devices")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
