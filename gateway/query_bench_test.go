package gateway

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// percentiles reports the p50 and p99 of ds in milliseconds.
func percentiles(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	at := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(math.Ceil(p*float64(len(ds))))-1)]) / 1e6
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkQueryYear measures GET /v1/readings/query for one device
// holding a year of readings, one a minute (525,600 minute buckets, 8,760
// hour and 365 day buckets in its roll-ups), as its organisation's admin
// over loopback HTTP (token checked, read rule applied): the year in day
// buckets, the year in hour buckets (one page), a week in minute buckets,
// and the whole year in minute buckets, paged 10,000 at a time, in one
// page of rows and in one page of columns (format=columns, and
// format=cbor: typed arrays), and the last three received but not
// decoded. The
// roll-ups are filled through the index (index.add, as ingest does),
// not by signing half a million readings. docs/benchmarks.md has the
// figures.
func BenchmarkQueryYear(b *testing.B) {
	tn := startTestNet(b)
	dev := tn.sensor.ID()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const minutes = 365 * 24 * 60
	t0 := time.Now()
	seq := uint64(0)
	first := tn.gw.Log().Size()
	for done := 0; done < minutes; {
		n := min(1024, minutes-done)
		ents := make([]*reading.Entry, n)
		for k := range ents {
			seq++
			v := 20 + 5*math.Sin(float64(seq)/720)
			at := start.Add(time.Duration(done+k) * time.Minute)
			ents[k] = &reading.Entry{Layout: 3, AuthHeight: 1, ReceivedAt: at.UnixMilli(), Envelope: &reading.Envelope{Device: dev, Raw: []byte{byte(k)},
				Readings: []reading.Reading{{Device: dev, Seq: seq, Time: at, ContentType: "temperature/celsius", Value: &v}}}}
		}
		if err := tn.gw.index.add(first+uint64(done), ents); err != nil {
			b.Fatal(err)
		}
		done += n
	}
	b.Logf("%d readings rolled up in %v", minutes, time.Since(t0).Round(time.Millisecond))
	ctx := testutil.Context(b, 10*time.Minute)
	// A year of readings is long since compacted when it is queried:
	// compact it now, so that the first queries do not share the CPU with
	// the compactions of the fill.
	if err := tn.gw.index.db.Compact(ctx, []byte{0}, []byte{0xff}, false); err != nil {
		b.Fatal(err)
	}
	b.Logf("compacted after %v", time.Since(t0).Round(time.Millisecond))
	end := start.AddDate(1, 0, 0)
	for _, c := range []struct {
		name   string
		q      client.ReadingQuery
		values int
	}{
		{"year-1d", client.ReadingQuery{Device: dev, Bucket: "1d", From: start, To: end}, 365},
		{"year-1h", client.ReadingQuery{Device: dev, Bucket: "1h", From: start, To: end, Limit: 10000}, 8760},
		{"week-1m", client.ReadingQuery{Device: dev, Bucket: "1m", From: start, To: start.AddDate(0, 0, 7), Limit: 10000}, 10080},
		{"year-1m-paged", client.ReadingQuery{Device: dev, Bucket: "1m", From: start, To: end, Limit: 10000}, minutes},
		{"year-1m-rows", client.ReadingQuery{Device: dev, Bucket: "1m", From: start, To: end, Limit: client.MaxBucketQueryLimit}, minutes},
		{"year-1m-columns", client.ReadingQuery{Device: dev, Bucket: "1m", From: start, To: end, Limit: client.MaxBucketQueryLimit, Format: client.FormatColumns}, minutes},
		{"year-1h-columns", client.ReadingQuery{Device: dev, Bucket: "1h", From: start, To: end, Limit: client.MaxBucketQueryLimit, Format: client.FormatColumns}, 8760},
		{"year-1m-cbor", client.ReadingQuery{Device: dev, Bucket: "1m", From: start, To: end, Limit: client.MaxBucketQueryLimit, Format: client.FormatCBOR}, minutes},
		{"year-1h-cbor", client.ReadingQuery{Device: dev, Bucket: "1h", From: start, To: end, Limit: client.MaxBucketQueryLimit, Format: client.FormatCBOR}, 8760},
	} {
		b.Run(c.name, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				t := time.Now()
				n := 0
				err := tn.client.QueryAll(ctx, c.q, func(a *client.QueryAnswer) error {
					n += len(a.Buckets)
					for _, s := range a.Series {
						n += s.Len()
					}
					return nil
				})
				if err != nil || n != c.values {
					b.Fatalf("%d buckets, %v; want %d", n, err, c.values)
				}
				ds = append(ds, time.Since(t))
			}
			percentiles(b, ds)
		})
	}
	// The same queries' answers received whole but not decoded: the
	// gateway's side (token, read rule, store, encoding, HTTP).
	for _, c := range []struct {
		name string
		q    client.ReadingQuery
	}{
		{"year-1m-rows-undecoded", client.ReadingQuery{Device: dev, Bucket: "1m", From: start, To: end, Limit: client.MaxBucketQueryLimit, Format: client.FormatJSON}},
		{"year-1m-columns-undecoded", client.ReadingQuery{Device: dev, Bucket: "1m", From: start, To: end, Limit: client.MaxBucketQueryLimit, Format: client.FormatColumns}},
		{"year-1m-cbor-undecoded", client.ReadingQuery{Device: dev, Bucket: "1m", From: start, To: end, Limit: client.MaxBucketQueryLimit, Format: client.FormatCBOR}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var ds []time.Duration
			size := int64(0)
			for b.Loop() {
				t := time.Now()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, tn.client.BaseURL+"/v1/readings/query?"+c.q.Values().Encode(), nil)
				if err == nil {
					err = tn.client.Authorize(ctx, req)
				}
				var resp *http.Response
				if err == nil {
					resp, err = http.DefaultClient.Do(req)
				}
				if err != nil {
					b.Fatal(err)
				}
				size, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("%s, %v", resp.Status, err)
				}
				ds = append(ds, time.Since(t))
			}
			b.ReportMetric(float64(size)/1e6, "MB")
			percentiles(b, ds)
		})
	}
}

// BenchmarkIngestRollups measures readings/s stored by one gateway (fsync
// on, batch verification, the index) with roll-ups on and off, in
// alternating rounds of the same run, each round on a fresh gateway store:
// 32 registered devices send pre-signed envelopes of 10 readings (two
// content types, times a few seconds apart), each device one envelope at a
// time, straight into Ingest (no transport). docs/benchmarks.md has the
// figures.
func BenchmarkIngestRollups(b *testing.B) {
	tn := startTestNet(b)
	ctx := testutil.Context(b, 10*time.Minute)
	const devices, envelopes, batch = 32, 60, 10
	keys := make([]*identity.Key, devices)
	for i := range keys {
		keys[i] = testutil.Key(b, identity.Ed25519)
		proof, _ := keys[i].Sign(record.PossessionMessage("gw-test", "acme", keys[i].ID()))
		if _, err := tn.client.Send(ctx, tn.admin, "", &record.DeviceRegister{Org: "acme", Device: keys[i].ID(), Class: "sensor", Proof: proof}, true); err != nil {
			b.Fatal(err)
		}
	}
	signed := make([][][]byte, devices)
	base := time.Now().Add(-time.Hour)
	for d, k := range keys {
		for e := range envelopes {
			rs := make([]reading.Reading, batch)
			for r := range rs {
				n := e*batch + r
				v := float64(n%97) / 3
				rs[r] = reading.Reading{Seq: uint64(n + 1), Time: base.Add(time.Duration(n) * 3 * time.Second), ContentType: []string{"temperature/celsius", "humidity/percent"}[n%2], Value: &v}
			}
			raw, err := reading.Sign(k, k.ID(), rs...)
			if err != nil {
				b.Fatal(err)
			}
			signed[d] = append(signed[d], raw)
		}
	}
	wide := wideLimits
	round := 0
	run := func(noRollups bool) float64 {
		round++
		gw, err := New(Config{Dir: filepath.Join(b.TempDir(), fmt.Sprint(round)), Key: tn.gwKey, AnchorInterval: time.Second, Limits: wide, NoRollups: noRollups},
			NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
		if err != nil {
			b.Fatal(err)
		}
		defer gw.Close()
		t := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, devices)
		for d := range devices {
			wg.Go(func() {
				for _, raw := range signed[d] {
					if _, err := gw.IngestIndex(ctx, "", raw, "bench"); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		return float64(devices*envelopes*batch) / time.Since(t).Seconds()
	}
	var on, off []float64
	for b.Loop() {
		off = append(off, run(true))
		on = append(on, run(false))
	}
	median := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	b.ReportMetric(median(on), "readings/s-rollups")
	b.ReportMetric(median(off), "readings/s-no-rollups")
	b.ReportMetric(median(on)/median(off), "ratio")
	b.ReportMetric(0, "ns/op")
}
