package bench

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestFleetBenchSmall runs the fleet benchmark with 200 devices over HTTP
// waking every 2 s (about 90 envelopes/s from one address: more than twice
// what the default per-address limit lets 4 gateways take, 40/s): the gateways
// acknowledge most of what is offered, store everything the devices saw
// acknowledged, and the per-device figures come out (the figures for
// 1,000 and 10,000 devices are in docs/benchmarks.md, measured with
// `thingnet bench fleet`).
func TestFleetBenchSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a devnet and 200 devices for about 20 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := FleetBench(ctx, t.TempDir(), FleetBenchConfig{Devices: 200, Wake: 2 * time.Second, Run: 8 * time.Second, Baseline: 2 * time.Second}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	res.WriteReport(os.Stderr)
	if res.Offered < 80 {
		t.Fatalf("offered %.1f envelopes/s; the test means to offer twice the default per-address limit of 4 gateways", res.Offered)
	}
	if res.Acked < 0.6*res.Offered {
		t.Errorf("acknowledged %.1f of %.1f envelopes/s offered", res.Acked, res.Offered)
	}
	if res.StoredTotal < res.AckedTotal {
		t.Errorf("gateways stored %d envelopes, the devices saw %d acknowledged", res.StoredTotal, res.AckedTotal)
	}
	if res.Limited != 0 {
		t.Errorf("%d envelopes refused by the limits: the raised per-address limit should take the fleet, and no device exceeds its own", res.Limited)
	}
	if res.CPUPerDevice <= 0 || res.HeapPerDevice <= 0 || res.Goroutines <= res.GoroutinesBase || res.Load == "" {
		t.Errorf("figures: %+v", res)
	}
}
