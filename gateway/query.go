package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/rollup"
)

// queryReadings serves GET /v1/readings/query (docs/data.md): raw readings
// or buckets of one device, a class or an organisation, in JSON or CSV
// (format=csv, or Accept: text/csv), buckets also in columns
// (format=columns) or in columns of CBOR typed arrays (format=cbor, or
// Accept: application/cbor), a page at a time. Buckets in JSON are written as they
// are read from the store, 64 KiB at a time.
func (g *Gateway) queryReadings(w http.ResponseWriter, r *http.Request) {
	q, err := client.ParseReadingQuery(r.URL.Query())
	if err != nil {
		api.WriteError(w, api.NewError(http.StatusBadRequest, "bad_request", err.Error()))
		return
	}
	if q.Format == "" {
		q.Format = client.FormatJSON
		switch accept := r.Header.Get("Accept"); {
		case strings.Contains(accept, "text/csv"):
			q.Format = client.FormatCSV
		case strings.Contains(accept, "application/cbor") && q.Bucket != client.BucketRaw:
			q.Format = client.FormatCBOR
		}
	}
	a := &client.QueryAnswer{Gateway: g.id, Axis: q.Axis, Bucket: q.Bucket}
	if q.Bucket != client.BucketRaw && q.Format != client.FormatCSV {
		out := &bucketWriter{w: w, a: a, columns: q.Format == client.FormatColumns || q.Format == client.FormatCBOR, cbor: q.Format == client.FormatCBOR}
		if err := g.query(r, q, a, out.bucket); err != nil {
			if out.started {
				g.log.Warn("query answer cut short", "err", err)
				panic(http.ErrAbortHandler) // the client sees a truncated answer, never a wrong one
			}
			api.WriteError(w, err)
			return
		}
		out.end()
		return
	}
	err = g.query(r, q, a, func(device, typ string, start int64, agg *rollup.Agg) {
		a.Buckets = append(a.Buckets, rollup.BucketOf(device, typ, start, agg))
	})
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if q.Format != client.FormatCSV {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("X-Devices", strconv.Itoa(a.Devices))
	w.Header().Set("X-Withheld", strconv.Itoa(a.Withheld))
	if a.Next != "" {
		w.Header().Set("X-Next-Cursor", a.Next)
	}
	client.WriteQueryCSV(w, a.Bucket, a.Items, a.Buckets)
}

// bucketSink takes a page's buckets in the order of the answer; a is
// valid only during the call.
type bucketSink func(device, typ string, start int64, a *rollup.Agg)

// maxSeries is the most buckets a client.Series of an answer holds.
const maxSeries = 8192

// bucketWriter writes a page of buckets in JSON as the query finds them:
// rows (client.QueryAnswer's buckets, as encoding/json would) or, with
// columns, one client.Series per run of up to maxSeries of a device's
// buckets of one type.
// The answer's header fields come first (a holds them once the caller's
// devices are known, before the first bucket), next last.
type bucketWriter struct {
	w       http.ResponseWriter
	a       *client.QueryAnswer
	columns bool
	cbor    bool // columns in CBOR, typed arrays (client.DecodeQueryCBOR)
	buf     []byte
	started bool // bytes went out: an error can no longer be answered
	n       int  // buckets, or with columns series, written
	rows    rollup.JSONRows
	// with columns, the run of buckets not yet written
	device, typ string
	starts      []int64
	aggs        []rollup.Agg
	mins        []byte // the run's mins as JSON numbers, one after another
	minEnd      []int  // where each ends in mins
}

func (o *bucketWriter) bucket(device, typ string, start int64, a *rollup.Agg) {
	if !o.columns {
		if o.n == 0 {
			o.head(`,"buckets":[`)
		} else {
			o.buf = append(o.buf, ',')
		}
		o.n++
		o.buf = o.rows.Append(o.buf, device, typ, start, a)
		o.flushSome()
		return
	}
	if len(o.starts) > 0 && (device != o.device || typ != o.typ || len(o.starts) == maxSeries) {
		o.series()
	}
	o.device, o.typ = device, typ
	o.starts, o.aggs = append(o.starts, start), append(o.aggs, *a)
}

// head appends the answer's fields known before its buckets, then more.
func (o *bucketWriter) head(more string) {
	o.buf = append(o.buf, `{"gateway":`...)
	o.buf = appendJSONString(o.buf, o.a.Gateway)
	o.buf = append(o.buf, `,"time":`...)
	o.buf = appendJSONString(o.buf, o.a.Axis)
	o.buf = append(o.buf, `,"bucket":`...)
	o.buf = appendJSONString(o.buf, o.a.Bucket)
	o.buf = append(o.buf, `,"devices":`...)
	o.buf = strconv.AppendInt(o.buf, int64(o.a.Devices), 10)
	if o.a.Withheld != 0 {
		o.buf = append(o.buf, `,"withheld":`...)
		o.buf = strconv.AppendInt(o.buf, int64(o.a.Withheld), 10)
	}
	o.buf = append(o.buf, more...)
}

// series appends the pending run of buckets as a client.Series.
func (o *bucketWriter) series() {
	if o.cbor {
		o.cborSeries()
		return
	}
	if o.n == 0 {
		o.head(`,"series":[`)
	} else {
		o.buf = append(o.buf, ',')
	}
	o.n++
	o.buf = append(o.buf, `{"device":`...)
	o.buf = appendJSONString(o.buf, o.device)
	o.buf = append(o.buf, `,"type":`...)
	o.buf = appendJSONString(o.buf, o.typ)
	o.buf = append(o.buf, `,"t":[`...)
	for i, t := range o.starts {
		if i > 0 {
			o.buf = append(o.buf, ',')
		}
		o.buf = strconv.AppendInt(o.buf, t, 10)
		o.flushSome()
	}
	// Each min as text, once: of a bucket of one reading every number is
	// the same, and the other columns copy it.
	o.mins, o.minEnd = o.mins[:0], o.minEnd[:0]
	for i := range o.aggs {
		o.mins = rollup.AppendFloat(o.mins, o.aggs[i].Min)
		o.minEnd = append(o.minEnd, len(o.mins))
	}
	column := func(name string, f func(a *rollup.Agg) float64) {
		o.buf = append(append(append(o.buf, `],"`...), name...), `":[`...)
		from := 0
		for i := range o.aggs {
			if i > 0 {
				o.buf = append(o.buf, ',')
			}
			a := &o.aggs[i]
			switch v := 0.0; {
			case name == "count":
				o.buf = strconv.AppendUint(o.buf, a.Count, 10)
			case name == "min":
				o.buf = append(o.buf, o.mins[from:o.minEnd[i]]...)
			default:
				if v = f(a); math.Float64bits(v) == math.Float64bits(a.Min) {
					o.buf = append(o.buf, o.mins[from:o.minEnd[i]]...)
				} else {
					o.buf = rollup.AppendFloat(o.buf, v) // null where not finite
				}
			}
			from = o.minEnd[i]
			o.flushSome()
		}
	}
	column("count", nil)
	column("min", nil)
	column("max", func(a *rollup.Agg) float64 { return a.Max })
	column("sum", func(a *rollup.Agg) float64 { return a.Sum })
	column("mean", func(a *rollup.Agg) float64 { return a.Mean() })
	column("last", func(a *rollup.Agg) float64 { return a.Last })
	o.buf = append(o.buf, "]}"...)
	o.starts, o.aggs = o.starts[:0], o.aggs[:0]
}

// end writes the rest of the answer.
func (o *bucketWriter) end() {
	if len(o.starts) > 0 {
		o.series()
	}
	if o.cbor {
		o.cborEnd()
		return
	}
	if o.n == 0 {
		o.head("")
	} else {
		o.buf = append(o.buf, ']')
	}
	if o.a.Next != "" {
		o.buf = append(o.buf, `,"next":`...)
		o.buf = appendJSONString(o.buf, o.a.Next)
	}
	o.buf = append(o.buf, "}\n"...)
	o.flush()
}

// flushSome writes the buffer out once it holds 64 KiB.
func (o *bucketWriter) flushSome() {
	if len(o.buf) >= 64<<10 {
		o.flush()
	}
}

func (o *bucketWriter) flush() {
	if !o.started {
		ct := "application/json"
		if o.cbor {
			ct = "application/cbor"
		}
		o.w.Header().Set("Content-Type", ct)
		o.started = true
	}
	o.w.Write(o.buf) // a client gone away is no error of the query's
	o.buf = o.buf[:0]
}

// cborHead appends the answer's fields known before its buckets, as an
// indefinite-length CBOR map (the number of its fields is known at the
// end), with series, an indefinite-length array, open.
func (o *bucketWriter) cborHead(series bool) {
	o.buf = append(o.buf, 0xbf)
	o.buf = client.AppendCBORText(client.AppendCBORText(o.buf, "gateway"), o.a.Gateway)
	o.buf = client.AppendCBORText(client.AppendCBORText(o.buf, "time"), o.a.Axis)
	o.buf = client.AppendCBORText(client.AppendCBORText(o.buf, "bucket"), o.a.Bucket)
	o.buf = identity.AppendCBORHead(client.AppendCBORText(o.buf, "devices"), 0, uint64(o.a.Devices))
	if o.a.Withheld != 0 {
		o.buf = identity.AppendCBORHead(client.AppendCBORText(o.buf, "withheld"), 0, uint64(o.a.Withheld))
	}
	if series {
		o.buf = append(client.AppendCBORText(o.buf, "series"), 0x9f)
	}
}

// cborSeries appends the pending run of buckets as a client.Series in
// CBOR (client.AppendSeriesCBOR: typed arrays, or their compact forms).
func (o *bucketWriter) cborSeries() {
	if o.n == 0 {
		o.cborHead(true)
	}
	o.n++
	z, _ := rollup.ParseSize(o.a.Bucket) // checked by ParseReadingQuery
	o.buf = client.AppendSeriesCBOR(o.buf, o.device, o.typ, z.MS, o.starts, o.aggs)
	o.flushSome()
	o.starts, o.aggs = o.starts[:0], o.aggs[:0]
}

// cborEnd closes the series and the answer, next last.
func (o *bucketWriter) cborEnd() {
	if o.n == 0 {
		o.cborHead(false)
	} else {
		o.buf = append(o.buf, 0xff)
	}
	if o.a.Next != "" {
		o.buf = client.AppendCBORText(client.AppendCBORText(o.buf, "next"), o.a.Next)
	}
	o.buf = append(o.buf, 0xff)
	o.flush()
}

// appendJSONString appends s as encoding/json writes a string.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

// query answers one page of q into a, as its caller may read it: a
// device it may not read is refused (403, 401); of a class or an
// organisation, such devices are skipped and counted in Withheld.
// Readings go into a.Items, buckets to sink, in order; a's header fields
// are set before the first.
func (g *Gateway) query(r *http.Request, q client.ReadingQuery, a *client.QueryAnswer, sink bucketSink) error {
	st, caller, err := g.caller(r)
	if err != nil {
		return err
	}
	devices, err := g.readable(st, caller, q, a)
	if err != nil {
		return err
	}
	var cur *client.Cursor
	if q.Cursor != "" {
		c, _ := client.DecodeCursor(q.Cursor) // checked by ParseReadingQuery
		cur = &c
	}
	n := 0 // buckets in the page
	add := func(d, typ string, start int64, agg *rollup.Agg) bool {
		if n >= q.Limit {
			a.Next = client.Cursor{Device: d, Type: typ, Time: start}.Encode()
			return false
		}
		n++
		sink(d, typ, start, agg)
		return true
	}
	for _, d := range devices {
		if cur != nil && d < cur.Device {
			continue
		}
		var c *client.Cursor
		if cur != nil && d == cur.Device {
			c = cur
		}
		var full bool
		if q.Bucket == client.BucketRaw {
			full, err = g.queryRaw(d, q, c, a)
		} else {
			full, err = g.queryBuckets(d, q, c, add)
		}
		if err != nil || full {
			return err
		}
	}
	return nil
}

// readable lists, in order, the devices of q that caller may read and
// that this gateway holds readings of, counting in a those it may not.
func (g *Gateway) readable(st *ledger.State, caller string, q client.ReadingQuery, a *client.QueryAnswer) ([]string, error) {
	if q.Device != "" {
		d, err := st.Device(q.Device)
		if errors.Is(err, ledger.ErrNotFound) {
			return nil, api.NewError(http.StatusNotFound, "not_found", fmt.Sprintf("no device %s on the ledger", q.Device))
		}
		if err != nil {
			return nil, err
		}
		ok, err := g.allowRead(st, caller, d)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, api.Refuse(caller, "the readings of "+q.Device)
		}
		a.Devices = 1
		return []string{q.Device}, nil
	}
	held, err := g.index.devices()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range held {
		d, err := st.Device(id)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if q.Class != "" && d.Class != q.Class || q.Org != "" && d.Org != q.Org {
			continue
		}
		ok, err := g.allowRead(st, caller, d)
		if err != nil {
			return nil, err
		}
		if !ok {
			a.Withheld++
			continue
		}
		out = append(out, id)
	}
	a.Devices = len(out)
	return out, nil
}

// span is the query's range in Unix ms, [from, to).
func span(q client.ReadingQuery) (from, to int64) {
	from, to = 0, 1<<62
	if !q.From.IsZero() {
		from = q.From.UnixMilli()
	}
	if !q.To.IsZero() {
		to = q.To.UnixMilli()
	}
	return from, to
}

// queryRaw adds device d's readings of q to a, from cursor c (nil: from
// the start); full when the page is full (a.Next is then set).
func (g *Gateway) queryRaw(d string, q client.ReadingQuery, c *client.Cursor, a *client.QueryAnswer) (bool, error) {
	from, to := span(q)
	startIdx := uint64(0)
	if c != nil && c.Time >= from {
		from, startIdx = c.Time, c.Index
	}
	full := false
	err := g.index.scanTimes(q.Axis, d, from, startIdx, to, func(ms int64, i uint64) (bool, error) {
		e, err := g.entryAt(i)
		if err != nil || e == nil {
			return err == nil, err // erased while the query ran: skipped
		}
		for k, rd := range e.Envelope.Readings {
			if q.Axis == client.AxisDevice && rd.Time.UnixMilli() != ms || q.Type != "" && rd.ContentType != q.Type {
				continue
			}
			if c != nil && ms == c.Time && i == c.Index && k < c.Item {
				continue
			}
			if len(a.Items) >= q.Limit {
				a.Next, full = client.Cursor{Device: d, Time: ms, Index: i, Item: k}.Encode(), true
				return false, nil
			}
			it := client.NewReadingItem(i, e, rd, g.late(e.ReceivedAt, rd))
			it.Gateway = g.id
			a.Items = append(a.Items, it)
		}
		return true, nil
	})
	return full, err
}

// queryBuckets gives device d's buckets of q to add, from cursor c, until
// add says the page is full (then full is true): the
// stored roll-ups for the devices' time, else computed from the raw
// readings in log order, as the roll-ups are (so both give the same
// numbers). A bucket is answered whole: those starting in
// [start of from's bucket, to).
func (g *Gateway) queryBuckets(d string, q client.ReadingQuery, c *client.Cursor, add func(d, typ string, start int64, a *rollup.Agg) bool) (bool, error) {
	z, _ := rollup.ParseSize(q.Bucket) // checked by ParseReadingQuery
	from, to := span(q)
	from = z.Start(from)
	after := func(typ string, start int64) bool { // at or after the cursor
		return c == nil || typ > c.Type || typ == c.Type && start >= c.Time
	}
	if q.Axis == client.AxisDevice && g.index.rollups {
		types := []string{q.Type}
		if q.Type == "" {
			var err error
			if types, err = g.index.rollupTypes(d); err != nil {
				return false, err
			}
		}
		for _, typ := range types {
			if c != nil && typ < c.Type {
				continue
			}
			lo := from
			if c != nil && typ == c.Type {
				lo = max(lo, c.Time)
			}
			more := true
			err := g.index.scanRollups(d, typ, z, lo, to, func(start int64, agg *rollup.Agg) bool {
				more = add(d, typ, start, agg)
				return more
			})
			if err != nil || !more {
				return !more, err
			}
		}
		return false, nil
	}
	// Computed: the readings of the whole buckets, in log order.
	hi := to
	if to < 1<<62 {
		hi = z.Start(to-1) + z.MS
	}
	type placed struct {
		i uint64
		k int
		p rollup.Point
	}
	var pts []placed
	seen := map[uint64]bool{}
	err := g.index.scanTimes(q.Axis, d, from, 0, hi, func(ms int64, i uint64) (bool, error) {
		if seen[i] {
			return true, nil // an envelope's readings are all taken at its first key
		}
		seen[i] = true
		e, err := g.entryAt(i)
		if err != nil || e == nil {
			return err == nil, err
		}
		for k, rd := range e.Envelope.Readings {
			t := rd.Time.UnixMilli()
			if q.Axis == client.AxisReceived {
				t = e.ReceivedAt
			}
			if rd.Value == nil || t < from || t >= hi || q.Type != "" && rd.ContentType != q.Type {
				continue
			}
			pts = append(pts, placed{i, k, rollup.Point{Device: d, Type: rd.ContentType, Time: t, Seq: rd.Seq, Value: *rd.Value}})
		}
		return true, nil
	})
	if err != nil {
		return false, err
	}
	slices.SortFunc(pts, func(x, y placed) int {
		if x.i != y.i {
			return cmpU64(x.i, y.i)
		}
		return x.k - y.k
	})
	points := make([]rollup.Point, len(pts))
	for n, p := range pts {
		points[n] = p.p
	}
	more := true
	rollup.Aggregate(points, z, func(k rollup.Key, agg *rollup.Agg) {
		if more && after(k.Type, k.Start) {
			more = add(d, k.Type, k.Start, agg)
		}
	})
	return !more, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scanTimes calls fn with the index keys of device d on axis (r/ keys for
// the devices' time, v/ keys for the receive time, and the archived
// entries' folded ones: scanAxis) from (fromMS, fromIdx) up to toMS, in
// order, until fn returns false or an error.
func (x *index) scanTimes(axis, d string, fromMS int64, fromIdx uint64, toMS int64, fn func(ms int64, i uint64) (bool, error)) error {
	ax := byte(axisTime)
	if axis == client.AxisReceived {
		ax = axisReceived
	}
	return x.scanAxis(ax, d, uint64(fromMS), fromIdx, uint64(toMS), func(ms, i uint64) (bool, error) { return fn(int64(ms), i) })
}
