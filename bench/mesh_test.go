package bench

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestMeshBenchSmall runs the messaging benchmark small: both paths deliver
// every message and report figures (the figures themselves are in
// docs/benchmarks.md, measured with `thingnet bench mesh`).
func TestMeshBenchSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := MeshBenchConfig{Messages: 500, Latency: 50, Senders: 8, Rounds: 1}
	if _, err := FindMosquitto(""); err != nil {
		cfg.Mosquitto = "-"
		t.Logf("no mosquitto (%v): direct path only", err)
	}
	res, err := MeshBench(ctx, t.TempDir(), cfg, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Paths {
		if p.MsgsPerSec <= 0 || p.P50 <= 0 || p.P99 < p.P50 {
			t.Fatalf("%s: %+v", p.Path, p)
		}
	}
}

// TestMeshDistanceSmall: the emulated LAN and cloud paths deliver, and the
// cloud path's latency reflects its distance.
func TestMeshDistanceSmall(t *testing.T) {
	if _, err := FindMosquitto(""); err != nil {
		t.Skipf("no mosquitto: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs, err := MeshDistance(ctx, t.TempDir(), MeshDistanceConfig{Messages: 20, Cloud: 5 * time.Millisecond}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if rs[1].P50 < 10*time.Millisecond {
		t.Fatalf("brokered over two 5 ms links took %v one way", rs[1].P50)
	}
	if rs[0].P50 >= rs[1].P50 {
		t.Fatalf("direct LAN %v not faster than the distant broker %v", rs[0].P50, rs[1].P50)
	}
}
