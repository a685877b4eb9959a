package postgres_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/export"
	"github.com/thingnet/thingnet/export/internal/exporttest"
	"github.com/thingnet/thingnet/export/internal/pgtest"
	"github.com/thingnet/thingnet/export/postgres"
	"github.com/thingnet/thingnet/internal/testutil"
)

// BenchmarkExport measures, in one run against a real gateway and a real
// PostgreSQL: the gateway's ingest rate (signed readings stored, as fast
// as 32 devices can send), the exporter's rate writing the same readings
// into PostgreSQL from index 0, their ratio (goal ≥ 1.0), and the lag from
// a reading stored to its row committed while readings arrive at 1,000
// a second (p50 goal ≤ 1 s). docs/benchmarks.md has the command.
func BenchmarkExport(b *testing.B) {
	pg := pgtest.Start(b)
	const devices = 32
	tn := exporttest.Start(b, devices)
	ctx := testutil.Context(b, 10*time.Minute)
	const total = 20_000

	for range b.N {
		// Sign first: the gateway's rate is what it stores, not what the
		// devices sign.
		raws := tn.SignAll(b, total)
		first := tn.Node.Gateway().Log().Size()
		start := time.Now()
		tn.StoreAll(b, ctx, raws)
		ingest := float64(total) / time.Since(start).Seconds()

		sink, err := postgres.Open(ctx, postgres.Config{DSN: pg.DSN, Table: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		size := tn.Node.Gateway().Log().Size()
		e, err := export.New(export.Options{Name: "bench", Source: tn.Client(tn.Admin), From: first, Batch: 1000}, sink)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		stop := exporttest.Run(ctx, e)
		testutil.WaitFor(b, ctx, "the export of the burst", func() bool { return e.Status().Checkpoint >= size })
		exported := float64(total) / time.Since(start).Seconds()
		stop()
		sink.Close()

		concurrentIngest, behind, catchUp := keepUp(b, ctx, tn, pg.DSN, total)
		p50, p99 := lagAt1000(b, ctx, tn, pg.DSN)
		b.ReportMetric(concurrentIngest, "ingest_with_export_readings/s")
		b.ReportMetric(float64(behind), "entries_behind_at_end")
		b.ReportMetric(float64(catchUp.Milliseconds()), "catch_up_ms")
		b.ReportMetric(ingest, "ingest_readings/s")
		b.ReportMetric(exported, "export_readings/s")
		b.ReportMetric(exported/ingest, "export/ingest")
		b.ReportMetric(float64(p50.Milliseconds()), "lag_p50_ms")
		b.ReportMetric(float64(p99.Milliseconds()), "lag_p99_ms")
	}
}

// keepUp stores n more readings as fast as 32 devices can send them while
// an exporter follows the log into PostgreSQL: the ingest rate meanwhile,
// how many entries the export is behind when the last is stored, and how
// long it then takes to catch up.
func keepUp(b *testing.B, ctx context.Context, tn *exporttest.Net, dsn string, n int) (float64, uint64, time.Duration) {
	raws := tn.SignAll(b, n)
	sink, err := postgres.Open(ctx, postgres.Config{DSN: dsn, Table: "keepup"})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	e, err := export.New(export.Options{Name: "keepup", Source: tn.Client(tn.Admin), From: tn.Node.Gateway().Log().Size(), Batch: 1000}, sink)
	if err != nil {
		b.Fatal(err)
	}
	defer exporttest.Run(ctx, e)()
	start := time.Now()
	tn.StoreAll(b, ctx, raws)
	end := time.Now()
	rate := float64(n) / end.Sub(start).Seconds()
	size := tn.Node.Gateway().Log().Size()
	behind := size - min(size, e.Status().Checkpoint)
	testutil.WaitFor(b, ctx, "the export to catch up", func() bool { return e.Status().Checkpoint >= size })
	return rate, behind, time.Since(end)
}

// lagAt1000 sends 10,000 readings at 1,000 a second (20 devices at 50 a
// second each) while an exporter follows the log into PostgreSQL, and
// returns the stored → committed lag's p50 and p99.
func lagAt1000(b *testing.B, ctx context.Context, tn *exporttest.Net, dsn string) (p50, p99 time.Duration) {
	const devices, perDevice = 20, 500
	l := &lagTimes{stored: map[uint64]time.Time{}, committed: map[uint64]time.Time{}}
	committed := func(bt *export.Batch, at time.Time) {
		for _, r := range bt.Rows {
			l.note(r.Index, time.Time{}, at)
		}
	}
	sink, err := postgres.Open(ctx, postgres.Config{DSN: dsn, Table: "lag"})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	e, err := export.New(export.Options{Name: "lag", Source: tn.Client(tn.Admin), From: tn.Node.Gateway().Log().Size(), Committed: committed}, sink)
	if err != nil {
		b.Fatal(err)
	}
	defer exporttest.Run(ctx, e)()

	var wg sync.WaitGroup
	for _, k := range tn.Sensors[:devices] {
		raws := make([][]byte, perDevice)
		for i := range raws {
			if raws[i], err = tn.Sign(k, float64(i)); err != nil {
				b.Fatal(err)
			}
		}
		wg.Go(func() { send(b, ctx, tn, raws, l) })
	}
	wg.Wait()
	testutil.WaitFor(b, ctx, "every reading committed", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.lags) == devices*perDevice
	})
	slices.Sort(l.lags)
	return l.lags[len(l.lags)/2], l.lags[len(l.lags)*99/100]
}

// lagTimes pairs each log index's stored and committed times, whichever
// is noted first.
type lagTimes struct {
	mu                sync.Mutex
	stored, committed map[uint64]time.Time
	lags              []time.Duration
}

// note notes index i stored at s or committed at c (the other zero).
func (l *lagTimes) note(i uint64, s, c time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.IsZero() {
		s = l.stored[i]
	} else {
		c = l.committed[i]
	}
	if s.IsZero() || c.IsZero() {
		l.stored[i], l.committed[i] = s, c
		return
	}
	l.lags = append(l.lags, max(c.Sub(s), 0))
	delete(l.stored, i)
	delete(l.committed, i)
}

// send stores raws at 50 a second, noting when each was stored.
func send(b *testing.B, ctx context.Context, tn *exporttest.Net, raws [][]byte, l *lagTimes) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for _, raw := range raws {
		<-tick.C
		i, err := tn.Store(ctx, raw)
		if err != nil {
			b.Error(err)
			return
		}
		l.note(i, time.Now(), time.Time{})
	}
}
