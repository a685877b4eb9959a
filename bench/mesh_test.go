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
