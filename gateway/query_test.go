package gateway

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/rollup"
)

// queryAll pages through q with c and returns every item and bucket.
func queryAll(t *testing.T, c *client.Client, q client.ReadingQuery) ([]client.ReadingItem, []rollup.Bucket, *client.QueryAnswer) {
	t.Helper()
	var items []client.ReadingItem
	var buckets []rollup.Bucket
	var last *client.QueryAnswer
	pages := 0
	err := c.QueryAll(testutil.Context(t, time.Minute), q, func(a *client.QueryAnswer) error {
		pages++
		cols := seriesBuckets(a.Series)
		columns := q.Format == client.FormatColumns || q.Format == client.FormatCBOR
		if columns && len(a.Buckets) > 0 || !columns && len(a.Series) > 0 {
			return fmt.Errorf("format %q answered %d rows and %d series", q.Format, len(a.Buckets), len(a.Series))
		}
		if q.Limit > 0 && len(a.Items)+len(a.Buckets)+len(cols) > q.Limit {
			return fmt.Errorf("page of %d; the limit is %d", len(a.Items)+len(a.Buckets)+len(cols), q.Limit)
		}
		items, buckets, last = append(items, a.Items...), append(append(buckets, a.Buckets...), cols...), a
		return nil
	})
	if err != nil {
		t.Fatalf("query %+v (page %d): %v", q, pages, err)
	}
	return items, buckets, last
}

// seriesBuckets is the buckets of columns as rows.
func seriesBuckets(ss []client.Series) []rollup.Bucket {
	var out []rollup.Bucket
	for _, s := range ss {
		for i, t := range s.T {
			a := rollup.Agg{Count: uint64(s.Count[i]), Min: s.Min[i], Max: s.Max[i], Sum: s.Sum[i], Last: s.Last[i]}
			out = append(out, rollup.BucketOf(s.Device, s.Type, t, &a))
		}
	}
	return out
}

// sameBuckets compares two answers' buckets exactly.
func sameBuckets(t *testing.T, what string, got, want []rollup.Bucket) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("%s: buckets differ:\n got %d: %.600s\nwant %d: %.600s", what, len(got), g, len(want), w)
	}
}

// TestQuery posts random readings (batches, random times over three days,
// two types, byte-string values that do not roll up) and checks GET
// /v1/readings/query: raw readings page by page with a cursor, each once;
// buckets of every size from the roll-ups equal a brute-force computation
// over what was posted, and equal the buckets computed from raw readings
// with the roll-ups off; CSV by format= and Accept; per class; by receive
// time. Then a crash between the log and the index (entries appended to
// the log, never indexed): on restart the roll-ups take them in and still
// equal the brute force.
func TestQuery(t *testing.T) {
	tn := startTestNet(t)
	wide := wideLimits
	if err := tn.gw.Close(); err != nil {
		t.Fatal(err)
	}
	tn.startGatewayWith(t, func(c *Config) { c.Limits = wide })
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 17))
	t.Logf("seed %d", seed)
	base := time.Now().Add(-72 * time.Hour).Truncate(time.Hour)
	var posted []reading.Reading // in log order
	seq := uint64(0)
	next := func() reading.Reading {
		seq++
		r := reading.Reading{Seq: seq, Time: base.Add(time.Duration(rng.Int64N(int64(70 * time.Hour)))).Truncate(time.Millisecond),
			ContentType: []string{"temperature/celsius", "humidity/percent"}[rng.IntN(2)]}
		if rng.IntN(8) == 0 {
			r.Bytes = []byte("raw")
		} else {
			v := math.Round(rng.NormFloat64()*1e4) / 100
			r.Value = &v
		}
		return r
	}
	for range 40 {
		rs := []reading.Reading{next()}
		for rng.IntN(3) == 0 {
			rs = append(rs, next())
		}
		tn.sendSigned(t, rs...)
		for _, r := range rs {
			r.Device = tn.sensor.ID()
			posted = append(posted, r)
		}
	}
	dev := tn.sensor.ID()
	brute := func(z rollup.Size) []rollup.Bucket {
		var pts []rollup.Point
		for _, r := range posted {
			if r.Value != nil {
				pts = append(pts, rollup.Point{Device: dev, Type: r.ContentType, Time: r.Time.UnixMilli(), Seq: r.Seq, Value: *r.Value})
			}
		}
		return rollup.Compute(pts, z)
	}

	// Raw, 7 a page: every reading once, in time order.
	items, _, _ := queryAll(t, tn.client, client.ReadingQuery{Device: dev, Limit: 7})
	if len(items) != len(posted) {
		t.Fatalf("raw query paged out %d readings; %d were posted", len(items), len(posted))
	}
	seen := map[uint64]bool{}
	for k, it := range items {
		if seen[it.Seq] || k > 0 && it.Time.Before(items[k-1].Time) || it.ReceivedAt == nil || it.Gateway != tn.gw.ID() {
			t.Fatalf("raw item %d: %+v (a repeat, out of order, or without its receive time and gateway)", k, it)
		}
		seen[it.Seq] = true
	}
	// A range: only readings in it.
	from, to := base.Add(10*time.Hour), base.Add(30*time.Hour)
	inRange, _, _ := queryAll(t, tn.client, client.ReadingQuery{Device: dev, From: from, To: to, Type: "humidity/percent", Limit: 3})
	want := 0
	for _, r := range posted {
		if !r.Time.Before(from) && r.Time.Before(to) && r.ContentType == "humidity/percent" {
			want++
		}
	}
	if len(inRange) != want {
		t.Fatalf("range query: %d readings; want %d", len(inRange), want)
	}

	// Buckets from the roll-ups = brute force.
	answers := map[string][]rollup.Bucket{}
	for _, z := range rollup.Sizes {
		_, got, _ := queryAll(t, tn.client, client.ReadingQuery{Device: dev, Bucket: z.Name, Limit: 5})
		sameBuckets(t, "roll-ups "+z.Name, got, brute(z))
		answers[z.Name] = got
		// In columns, JSON and CBOR, paged across the two types' series,
		// and in one page.
		for _, f := range []string{client.FormatColumns, client.FormatCBOR} {
			for _, limit := range []int{5, client.MaxBucketQueryLimit} {
				_, cols, _ := queryAll(t, tn.client, client.ReadingQuery{Device: dev, Bucket: z.Name, Limit: limit, Format: f})
				sameBuckets(t, fmt.Sprintf("roll-ups %s in %s, %d a page", z.Name, f, limit), cols, got)
			}
		}
	}
	// Nothing in the range: the answer's fields, no buckets.
	for _, f := range []string{client.FormatJSON, client.FormatColumns, client.FormatCBOR} {
		a, err := tn.client.QueryReadings(t.Context(), client.ReadingQuery{Device: dev, Bucket: "1h", To: base.Add(-time.Hour), Format: f})
		if err != nil || a.Devices != 1 || a.Bucket != "1h" || a.Gateway != tn.gw.ID() || len(a.Buckets)+len(a.Series) != 0 || a.Next != "" {
			t.Fatalf("empty range in %s = %+v, %v", f, a, err)
		}
	}
	// Rows of a whole range in one page.
	_, one, last := queryAll(t, tn.client, client.ReadingQuery{Device: dev, Bucket: "1m", Limit: client.MaxBucketQueryLimit})
	if sameBuckets(t, "minutes in one page", one, answers["1m"]); last.Next != "" || last.Devices != 1 {
		t.Fatalf("one page of minutes: next %q, devices %d", last.Next, last.Devices)
	}
	// A range in buckets: whole buckets from the one holding from.
	_, hours, _ := queryAll(t, tn.client, client.ReadingQuery{Device: dev, Bucket: "1h", From: from.Add(30 * time.Minute), To: to})
	var wantHours []rollup.Bucket
	for _, b := range answers["1h"] {
		if !b.Start.Before(from) && b.Start.Before(to) {
			wantHours = append(wantHours, b)
		}
	}
	sameBuckets(t, "hours in a range", hours, wantHours)

	// CSV, by format= and by Accept.
	for _, how := range []string{"format", "accept"} {
		v := client.ReadingQuery{Device: dev, Bucket: "1d"}.Values()
		if how == "format" {
			v.Set("format", "csv")
		}
		req, _ := http.NewRequest(http.MethodGet, tn.client.BaseURL+"/v1/readings/query?"+v.Encode(), nil)
		if how == "accept" {
			req.Header.Set("Accept", "text/csv")
		}
		if err := tn.client.Authorize(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(resp.Body).ReadAll()
		resp.Body.Close()
		if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || len(rows) != len(answers["1d"])+1 || rows[0][0] != "device" {
			t.Fatalf("CSV by %s: %d rows, %v, content type %q", how, len(rows), err, resp.Header.Get("Content-Type"))
		}
		if rows[1][3] != fmt.Sprint(answers["1d"][0].Count) {
			t.Fatalf("CSV by %s: first row %v; want count %d", how, rows[1], answers["1d"][0].Count)
		}
	}

	// Per class, as the organisation's admin: the sensor (the weak device
	// has no readings here).
	items, _, a := queryAll(t, tn.client, client.ReadingQuery{Class: "sensor"})
	if len(items) != len(posted) || a.Devices != 1 || a.Withheld != 0 {
		t.Fatalf("class query: %d readings of %d devices, %d withheld; want %d of 1", len(items), a.Devices, a.Withheld, len(posted))
	}
	// By receive time: every reading was received in the last minutes.
	_, minutes, _ := queryAll(t, tn.client, client.ReadingQuery{Device: dev, Axis: client.AxisReceived, Bucket: "1m", From: time.Now().Add(-10 * time.Minute)})
	n := uint64(0)
	for _, b := range minutes {
		n += b.Count
	}
	if numeric := len(brute(rollup.Sizes[0])); n == 0 || numeric == 0 || int(n) != countNumeric(posted) {
		t.Fatalf("received-time minutes count %d readings; %d numeric were posted", n, countNumeric(posted))
	}

	// Bad parameters say what is wrong.
	var ae *client.Error
	for _, bad := range []string{"device=" + dev + "&bucket=5m", "class=sensor&org=acme", "device=" + dev + "&from=2026-13-01", "device=" + dev + "&cursor=xyz", "device=" + dev + "&format=xml"} {
		if err := tn.client.Get(t.Context(), "/v1/readings/query?"+bad, nil); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Errorf("query %s = %v; want 400", bad, err)
		}
	}

	// Roll-ups off: the same buckets, computed from the raw readings.
	if err := tn.gw.Close(); err != nil {
		t.Fatal(err)
	}
	tn.startGatewayWith(t, func(c *Config) { c.NoRollups, c.Limits = true, wide })
	for _, z := range rollup.Sizes {
		_, got, _ := queryAll(t, tn.client, client.ReadingQuery{Device: dev, Bucket: z.Name})
		sameBuckets(t, "computed "+z.Name, got, answers[z.Name])
		_, got, _ = queryAll(t, tn.client, client.ReadingQuery{Class: "sensor", Bucket: z.Name, Limit: 4, Format: client.FormatColumns})
		sameBuckets(t, "computed in columns "+z.Name, got, answers[z.Name])
		_, got, _ = queryAll(t, tn.client, client.ReadingQuery{Class: "sensor", Bucket: z.Name, Limit: 4, Format: client.FormatCBOR})
		sameBuckets(t, "computed in CBOR "+z.Name, got, answers[z.Name])
	}

	// A crash between the log and the index: entries in the log the index
	// never saw (and roll-ups that were off meanwhile). On restart with
	// roll-ups, they are rebuilt and take them in.
	crash := func(n int) {
		for range n {
			r := next()
			raw, err := reading.Sign(tn.sensor, dev, r)
			if err != nil {
				t.Fatal(err)
			}
			ent, err := reading.NewEntry(1, time.Now(), raw)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tn.gw.Log().Append([][]byte{ent}); err != nil {
				t.Fatal(err)
			}
			r.Device = dev
			posted = append(posted, r)
		}
	}
	// The second time with the roll-ups on: the restart catches up from
	// the log, adding the lost entries to the roll-ups it has.
	for _, how := range []string{"rebuilt", "caught up"} {
		crash(10)
		if err := tn.gw.Close(); err != nil {
			t.Fatal(err)
		}
		tn.startGateway(t)
		for _, z := range rollup.Sizes {
			_, got, _ := queryAll(t, tn.client, client.ReadingQuery{Device: dev, Bucket: z.Name})
			sameBuckets(t, how+" after a crash "+z.Name, got, brute(z))
		}
	}

	// A store of the first roll-up layout (one 56-byte value per bucket,
	// no layout key): the roll-ups are dropped and rebuilt at start.
	if err := tn.gw.Close(); err != nil {
		t.Fatal(err)
	}
	x, err := openIndex(filepath.Join(tn.dir, "gateway", "index"), slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	old := rollupKey(dev, posted[0].ContentType, rollup.Minute, rollup.Minute.Start(posted[0].Time.UnixMilli()))
	if err := errors.Join(x.db.Delete(keyRollupLayout, pebble.Sync), x.db.Set(old, make([]byte, 56), pebble.Sync), x.close()); err != nil {
		t.Fatal(err)
	}
	tn.startGateway(t)
	for _, z := range rollup.Sizes {
		_, got, _ := queryAll(t, tn.client, client.ReadingQuery{Device: dev, Bucket: z.Name})
		sameBuckets(t, "migrated from layout 1 "+z.Name, got, brute(z))
	}
}

func countNumeric(rs []reading.Reading) int {
	n := 0
	for _, r := range rs {
		if r.Value != nil {
			n++
		}
	}
	return n
}

// TestReadingTime: a reading dated beyond the gateway's skew is refused
// over HTTP (422 future_reading) and over MQTT, and nothing is stored; a
// reading dated long before its receipt is stored and flagged late, with
// the gateway's receive time in the answers and in the proof (whose entry
// is of layout 3 and verifies).
func TestReadingTime(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, 2*time.Minute)
	size := tn.gw.Log().Size()
	v := 1.5
	future, _ := reading.Sign(tn.sensor, tn.sensor.ID(), reading.Reading{Seq: 1, Time: time.Now().Add(time.Hour), ContentType: "temperature/celsius", Value: &v})
	_, err := tn.post(t, future)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || ae.Code != "future_reading" || !strings.Contains(ae.Message, "after the gateway's clock") {
		t.Fatalf("future-dated reading over HTTP = %v; want 422 future_reading", err)
	}
	// 2100-01-01, as in the issue.
	far, _ := reading.Sign(tn.sensor, tn.sensor.ID(), reading.Reading{Seq: 2, Time: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), ContentType: "temperature/celsius", Value: &v})
	if _, err := tn.post(t, far); !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity {
		t.Fatalf("reading of 2100 over HTTP = %v; want 422", err)
	}

	b, err := tn.gw.StartMQTT(MQTTConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	token, _ := identity.NewCWT(tn.sensor, tn.sensor.ID(), "gw-test", time.Now(), time.Hour)
	lost := make(chan error, 1)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetProtocolVersion(4).
		SetClientID(tn.sensor.ID()).SetUsername(tn.sensor.ID()).SetPassword(identity.EncodeCWTPassword(token)).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	rejected := tn.gw.Stats().Rejected
	c.Publish(ReadingsTopic(tn.sensor.ID()), 1, false, future)
	// MQTT 3.1.1 has no negative acknowledgement: the broker closes the
	// connection (the device keeps the reading), and stores nothing.
	select {
	case <-lost:
	case <-ctx.Done():
		t.Fatal("the broker kept the connection of a future-dated reading")
	}
	if got := tn.gw.Stats().Rejected; got != rejected+1 {
		t.Fatalf("rejected count %d; want %d", got, rejected+1)
	}
	if got := tn.gw.Log().Size(); got != size {
		t.Fatalf("the log grew from %d to %d: a future-dated reading was stored", size, got)
	}

	// Late: dated two hours before its receipt. On time: dated now.
	before := time.Now().Truncate(time.Millisecond)
	late, _ := reading.Sign(tn.sensor, tn.sensor.ID(), reading.Reading{Seq: 3, Time: time.Now().Add(-2 * time.Hour), ContentType: "temperature/celsius", Value: &v})
	li, err := tn.post(t, late)
	if err != nil {
		t.Fatal(err)
	}
	onTime, _ := reading.Sign(tn.sensor, tn.sensor.ID(), reading.Reading{Seq: 4, Time: time.Now(), ContentType: "temperature/celsius", Value: &v})
	oi, err := tn.post(t, onTime)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	var page struct{ Items []client.ReadingItem }
	if err := tn.client.Get(ctx, "/v1/readings?device="+url.QueryEscape(tn.sensor.ID()), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || !page.Items[0].Late || page.Items[1].Late || page.Items[0].Index != li || page.Items[1].Index != oi {
		t.Fatalf("listed %+v; want the late one flagged, the other not", page.Items)
	}
	for _, it := range page.Items {
		if it.ReceivedAt == nil || it.ReceivedAt.Before(before) || it.ReceivedAt.After(after) {
			t.Fatalf("received_at %v; want between %v and %v", it.ReceivedAt, before, after)
		}
	}
	p := tn.proof(t, li)
	if !p.Late || p.ReceivedAt != page.Items[0].ReceivedAt.UnixMilli() {
		t.Fatalf("proof: late %v, received at %d; want late, %d", p.Late, p.ReceivedAt, page.Items[0].ReceivedAt.UnixMilli())
	}
	if e, err := reading.DecodeEntry(p.Entry()); err != nil || e.Layout != 3 {
		t.Fatalf("the proof's entry: %v, %v; want layout 3", e, err)
	}
	if _, err := tn.client.VerifyReading(ctx, "gw-test", p); err != nil {
		t.Fatalf("a layout 3 entry does not verify: %v", err)
	}
	// The receive time is anchored: another one breaks the proof.
	p.ReceivedAt++
	if _, err := tn.client.VerifyReading(ctx, "gw-test", p); err == nil {
		t.Fatal("a proof with another receive time verifies")
	}
	var got map[string]any
	if err := tn.client.Get(ctx, fmt.Sprintf("/v1/readings/%d", li), &got); err != nil || got["received_at"] != float64(p.ReceivedAt-1) || got["late"] != true {
		t.Fatalf("GET reading: received_at %v, late %v, %v; want %d and true", got["received_at"], got["late"], err, p.ReceivedAt-1)
	}
}

// TestBucketWriterColumns: a long run of buckets comes in series of at
// most maxSeries, consecutive ones of the same device and type, which
// together are the run; rows of the same buckets say the same.
func TestBucketWriterColumns(t *testing.T) {
	var want []rollup.Bucket
	write := func(format string) *client.QueryAnswer {
		rec := httptest.NewRecorder()
		a := &client.QueryAnswer{Gateway: "gw", Axis: client.AxisDevice, Bucket: "1m", Devices: 2, Withheld: 1, Next: "cursor"}
		o := &bucketWriter{w: rec, a: a, columns: format != client.FormatJSON, cbor: format == client.FormatCBOR}
		want = want[:0]
		for _, run := range []struct {
			dev, typ string
			n        int
		}{{"d1", "t1", 2*maxSeries + 5}, {"d1", "t2", 3}, {"d2", "t1", maxSeries}} {
			for i := range run.n {
				var agg rollup.Agg
				agg.Add(float64(i)/3, 0, 0)
				if i%7 == 0 {
					agg.Add(math.MaxFloat64, 0, 0) // the sum overflows
				}
				start := int64(i) * 60_000
				o.bucket(run.dev, run.typ, start, &agg)
				want = append(want, rollup.BucketOf(run.dev, run.typ, start, &agg))
			}
		}
		o.end()
		var got client.QueryAnswer
		decode, ct := json.Unmarshal, "application/json"
		if format == client.FormatCBOR {
			decode, ct = func(b []byte, v any) error { return client.DecodeQueryCBOR(b, v.(*client.QueryAnswer)) }, "application/cbor"
		}
		if err := decode(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.Gateway != "gw" || got.Devices != 2 || got.Withheld != 1 || got.Next != "cursor" || rec.Header().Get("Content-Type") != ct {
			t.Fatalf("answer's fields %+v, content type %q", got, rec.Header().Get("Content-Type"))
		}
		return &got
	}
	for _, f := range []string{client.FormatColumns, client.FormatCBOR} {
		cols := write(f)
		for _, s := range cols.Series {
			if s.Len() == 0 || s.Len() > maxSeries || len(s.Count) != s.Len() || len(s.Last) != s.Len() {
				t.Fatalf("%s: series of %s %s: %d buckets, %d counts, %d lasts", f, s.Device, s.Type, s.Len(), len(s.Count), len(s.Last))
			}
		}
		if len(cols.Series) != 5 {
			t.Errorf("%s: %d series; want 5 (3, 1 and 1 of the runs, split at %d)", f, len(cols.Series), maxSeries)
		}
		sameBuckets(t, f, seriesBuckets(cols.Series), want)
	}
	sameBuckets(t, "rows", write(client.FormatJSON).Buckets, want)
}

// TestBucketWriterCBORCompact: over random runs of buckets (one reading
// each, several, gaps, negative numbers, values near the float64 limits),
// the CBOR columns (compact where they can be) decode to the same series
// as the JSON columns, number for number; a run of one reading a minute
// is its min column and little else.
func TestBucketWriterCBORCompact(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1717))
	t.Logf("seed %d", seed)
	edge := []float64{0, -0.5, 1e-300, -math.MaxFloat64, math.MaxFloat64, -273.15}
	type bucket struct {
		dev, typ string
		start    int64
		agg      rollup.Agg
	}
	for round := range 8 {
		var in []bucket
		for _, dev := range []string{"d1", "d2"} {
			for _, typ := range []string{"t1", "t2"} {
				most := 1
				if rng.IntN(2) == 0 {
					most = 4
				}
				starts, aggs := testutil.RandomRun(rng, rng.IntN(2*maxSeries), 60_000, most, edge)
				for k := range starts {
					in = append(in, bucket{dev, typ, starts[k], aggs[k]})
				}
			}
		}
		var got [2]client.QueryAnswer
		var size [2]int
		for k, format := range []string{client.FormatColumns, client.FormatCBOR} {
			rec := httptest.NewRecorder()
			o := &bucketWriter{w: rec, a: &client.QueryAnswer{Gateway: "gw", Axis: client.AxisDevice, Bucket: "1m"}, columns: true, cbor: format == client.FormatCBOR}
			for _, b := range in {
				o.bucket(b.dev, b.typ, b.start, &b.agg)
			}
			o.end()
			size[k] = rec.Body.Len()
			decode := json.Unmarshal
			if format == client.FormatCBOR {
				decode = func(b []byte, v any) error { return client.DecodeQueryCBOR(b, v.(*client.QueryAnswer)) }
			}
			if err := decode(rec.Body.Bytes(), &got[k]); err != nil {
				t.Fatalf("round %d, %s: %v", round, format, err)
			}
		}
		j, c := got[0].Series, got[1].Series
		if len(j) != len(c) {
			t.Fatalf("round %d: %d series in JSON, %d in CBOR", round, len(j), len(c))
		}
		same := func(x, y client.Floats) bool {
			return slices.EqualFunc(x, y, func(a, b float64) bool {
				return a == b && math.Signbit(a) == math.Signbit(b) || math.IsNaN(a) && math.IsNaN(b)
			})
		}
		for i := range j {
			a, b := j[i], c[i]
			if a.Device != b.Device || a.Type != b.Type || !slices.Equal(a.T, b.T) || !slices.Equal(a.Count, b.Count) ||
				!same(a.Min, b.Min) || !same(a.Max, b.Max) || !same(a.Sum, b.Sum) || !same(a.Mean, b.Mean) || !same(a.Last, b.Last) {
				t.Fatalf("round %d, series %d (%s %s, %d buckets): CBOR %+v; JSON %+v", round, i, a.Device, a.Type, a.Len(), b, a)
			}
		}
		t.Logf("round %d: %d buckets, %d bytes in JSON columns, %d in CBOR", round, len(in), size[0], size[1])
	}
}
