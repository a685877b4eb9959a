package auditbundle

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
)

// BenchmarkBundle exports and verifies offline a bundle of N readings
// (THINGNET_BENCH_READINGS, default 100,000), each in its own envelope
// (one log entry each, the costliest layout), from 10 devices on a
// one-validator devnet; it reports the export's and the verification's
// time and the file's size. Ingestion is not measured. Run it with
// `make bench-audit` (docs/benchmarks.md).
func BenchmarkBundle(b *testing.B) {
	n := 100_000
	if v := os.Getenv("THINGNET_BENCH_READINGS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	tn := startNet(b, 1, devnet.SourceLimitsFor(1e6, 1e6))
	keys := tn.register(b, 10)
	ctx := context.Background()
	t0 := time.Now()
	at := time.Now().Truncate(time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	for d, k := range keys {
		wg.Add(1)
		go func(d int, k *identity.Key) {
			defer wg.Done()
			for i := d; i < n; i += len(keys) {
				v := float64(i)
				raw, err := reading.Sign(k, k.ID(), reading.Reading{Seq: uint64(i + 1), Time: at.Add(time.Duration(i) * time.Millisecond), ContentType: "temperature/celsius", Value: &v})
				if err == nil {
					err = post(tn.url, raw)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(d, k)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	tn.waitAnchored(b, ctx, uint64(n-1))
	b.Logf("%d readings sent and anchored in %v", n, time.Since(t0).Round(time.Millisecond))
	for b.Loop() {
		t1 := time.Now()
		bd, err := Export(ctx, tn.adminClient(), ExportOptions{Org: devnet.DemoOrg, Workers: 8})
		if err != nil {
			b.Fatal(err)
		}
		data, err := bd.Encode()
		if err != nil {
			b.Fatal(err)
		}
		export := time.Since(t1)
		trust := tn.trust(b, bd.TrustHeight)
		t2 := time.Now()
		dec, err := Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		s, err := Verify(ctx, dec, VerifyOptions{Trust: trust})
		if err != nil {
			b.Fatal(err)
		}
		verify := time.Since(t2)
		if s.Verified != n {
			b.Fatalf("%d verified of %d", s.Verified, n)
		}
		b.ReportMetric(export.Seconds(), "export-s")
		b.ReportMetric(verify.Seconds(), "verify-s")
		b.ReportMetric(float64(len(data))/1e6, "MB")
		b.ReportMetric(float64(len(data))/float64(n), "bytes/reading")
		b.Logf("%d readings: export %v, decode and verify %v, %d bytes (%d headers, %d proofs, %d anchors)",
			n, export.Round(time.Millisecond), verify.Round(time.Millisecond), len(data), len(bd.Headers), len(bd.Proofs), len(bd.Anchors))
	}
}
