package bench

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestAgreementBlocks(t *testing.T) {
	for _, w := range []string{AgreementReadings, AgreementCalls} {
		res, err := RunAgreementBlocks(t.TempDir(), w, 200, 100)
		if err != nil {
			t.Fatal(err)
		}
		if res.Transitions != 200 || res.PerSecond <= 0 {
			t.Fatalf("%+v", res)
		}
		t.Log(res)
	}
}

func TestReadingToCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a devnet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, relay := range []bool{false, true} {
		res, err := RunReadingToCommand(ctx, t.TempDir(), LatencyConfig{Validators: 1, Samples: 3, Relay: relay})
		if err != nil {
			t.Fatal(err)
		}
		if res.P50 <= 0 || res.P99 < res.P50 {
			t.Fatalf("%+v", res)
		}
		t.Log(res)
	}
}

// BenchmarkAgreementTransitions: transitions/s inside blocks.
//
//	go test -run XXX -bench AgreementTransitions -benchtime 1x ./bench/
func BenchmarkAgreementTransitions(b *testing.B) {
	n := envInt("AGREEMENT_TXS", 20_000)
	for _, w := range []string{AgreementReadings, AgreementCalls} {
		b.Run(w, func(b *testing.B) {
			for b.Loop() {
				res, err := RunAgreementBlocks(b.TempDir(), w, n, 1000)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(res.PerSecond, "transitions/s")
				b.Log(res)
			}
		})
	}
}

// BenchmarkReadingToCommand: reading -> command latency on a devnet.
//
//	go test -run XXX -bench ReadingToCommand -benchtime 1x ./bench/   # AGREEMENT_RELAY=1: through a relayer
func BenchmarkReadingToCommand(b *testing.B) {
	lc := LatencyConfig{Validators: envInt("AGREEMENT_VALIDATORS", 4), Samples: envInt("AGREEMENT_SAMPLES", 100), Relay: os.Getenv("AGREEMENT_RELAY") == "1"}
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		res, err := RunReadingToCommand(ctx, b.TempDir(), lc)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.P50.Milliseconds()), "p50-ms")
		b.ReportMetric(float64(res.P99.Milliseconds()), "p99-ms")
		b.Log(res)
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
