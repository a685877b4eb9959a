package bench

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestGatewayBench runs a tiny configuration of the gateway benchmark: every
// PUBACKed reading must be in the gateway's log and anchored, and no
// publish may fail. The Mosquitto baseline runs if the broker is installed.
func TestGatewayBench(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ledger networks")
	}
	cfg := GatewayBenchConfig{
		Devices: 4, Duration: 2 * time.Second, Warmup: -1, Batch: 5, Window: 8, Rounds: 1,
		MaxRate: 3000, AnchorInterval: 200 * time.Millisecond, VerifyTime: 100 * time.Millisecond, Mochi: true,
	}
	if _, err := FindMosquitto(""); err != nil {
		if !errors.Is(err, errNoMosquitto) {
			t.Fatal(err)
		}
		t.Logf("the Mosquitto baseline is skipped: %v", err)
		cfg.NoMosquitto = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := RunGateway(ctx, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Variants) != 2 {
		t.Fatalf("%d variants; want one-reading and batched envelopes", len(rep.Variants))
	}
	for _, v := range rep.Variants {
		for _, r := range v.Gateway {
			t.Logf("batch %d gateway: %s", v.Batch, r)
			switch {
			case r.Acked == 0 || r.Envelopes == 0:
				t.Errorf("batch %d: nothing acknowledged", v.Batch)
			case r.AckedMissing != 0:
				t.Errorf("batch %d: %d of %d PUBACKed envelopes are not in the log", v.Batch, r.AckedMissing, r.Acked)
			case r.Failed != 0:
				t.Errorf("batch %d: %d publishes failed: %s", v.Batch, r.Failed, r.FirstError)
			case uint64(r.Acked) > r.LogSize:
				t.Errorf("batch %d: %d PUBACKs but %d log entries", v.Batch, r.Acked, r.LogSize)
			case r.Samples == 0 || r.P50 <= 0:
				t.Errorf("batch %d: no anchoring latency measured", v.Batch)
			case r.AnchorTxs == 0 || r.BytesPer10k <= 0:
				t.Errorf("batch %d: no anchor tx seen", v.Batch)
			case r.Rejected+r.Limited+r.Overloaded != 0:
				t.Errorf("batch %d: gateway refused readings: %+v", v.Batch, r)
			}
		}
		for _, r := range v.Mosquitto {
			t.Logf("batch %d mosquitto: %s", v.Batch, r)
			if r.Envelopes == 0 || r.Failed != 0 {
				t.Errorf("batch %d mosquitto: %s", v.Batch, r)
			}
		}
		if len(v.Mochi) != 1 || v.Mochi[0].Envelopes == 0 || v.Mochi[0].Failed != 0 {
			t.Errorf("batch %d plain mochi: %+v; want one run, every publish acknowledged", v.Batch, v.Mochi)
		}
	}
	if len(rep.Verify) != 1 || rep.Verify[0].BatchPerS <= 0 || rep.Verify[0].SinglePerS <= 0 {
		t.Errorf("verify rates %+v", rep.Verify)
	}
}

// TestGatewayBenchTransports runs a tiny configuration over CoAP and over
// HTTP: every acknowledged reading (2.04, 202) must be in the gateway's log,
// no request may fail, and the plain server of the transport (the
// baseline) must acknowledge the same load.
func TestGatewayBenchTransports(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ledger networks")
	}
	for _, tr := range []string{TransportCoAP, TransportHTTP} {
		t.Run(tr, func(t *testing.T) {
			cfg := GatewayBenchConfig{
				Transport: tr, Devices: 4, Duration: 2 * time.Second, Warmup: -1, Batch: 1, Rounds: 1,
				MaxRate: 3000, AnchorInterval: 200 * time.Millisecond, VerifyTime: 100 * time.Millisecond,
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rep, err := RunGateway(ctx, t.TempDir(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			v := rep.Variants[0]
			if len(v.Gateway) != 1 || len(v.Mosquitto) != 1 {
				t.Fatalf("%d gateway runs, %d baseline runs; want 1 each", len(v.Gateway), len(v.Mosquitto))
			}
			r, b := v.Gateway[0], v.Mosquitto[0]
			t.Logf("gateway: %s", r)
			t.Logf("baseline: %s", b)
			if r.Acked == 0 || r.AckedMissing != 0 || r.Failed != 0 || uint64(r.Acked) > r.LogSize {
				t.Errorf("gateway over %s: %s", tr, r)
			}
			if r.Rejected+r.Limited+r.Overloaded != 0 {
				t.Errorf("gateway over %s refused readings: %+v", tr, r)
			}
			if b.Envelopes == 0 || b.Failed != 0 {
				t.Errorf("baseline over %s: %s", tr, b)
			}
		})
	}
}

// TestGatewayBenchPaced: with Rate set, the load publishes no faster than
// the pace (and the gateway gets all of it, anchored).
func TestGatewayBenchPaced(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ledger network")
	}
	cfg := GatewayBenchConfig{
		Devices: 4, Duration: 2 * time.Second, Warmup: -1, Batch: 1, Rounds: 1, Rate: 200,
		AnchorInterval: 200 * time.Millisecond, VerifyTime: 100 * time.Millisecond, NoMosquitto: true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := RunGateway(ctx, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Variants[0].Gateway[0]
	t.Logf("paced at %d/s: %s", cfg.Rate, r)
	if limit := cfg.Rate*int(cfg.Duration/time.Second) + cfg.Devices; r.Envelopes == 0 || r.Envelopes > limit {
		t.Errorf("%d envelopes acknowledged in the window; want 1 to %d at %d/s", r.Envelopes, limit, cfg.Rate)
	}
	if r.AckedMissing != 0 || r.Failed != 0 || r.Samples == 0 {
		t.Errorf("paced run: %s", r)
	}
}
