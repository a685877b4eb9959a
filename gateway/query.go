package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/rollup"
)

// queryReadings serves GET /v1/readings/query (docs/data.md): raw readings
// or buckets of one device, a class or an organisation, in JSON or CSV
// (format=csv, or Accept: text/csv), a page at a time.
func (g *Gateway) queryReadings(w http.ResponseWriter, r *http.Request) {
	a, err := g.Query(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	asCSV, err := wantsCSV(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if !asCSV {
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

// wantsCSV reads the answer's format: format=json|csv, else the Accept
// header.
func wantsCSV(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
		return strings.Contains(r.Header.Get("Accept"), "text/csv"), nil
	default:
		return false, api.NewError(http.StatusBadRequest, "bad_request", fmt.Sprintf("format %q: want json or csv", f))
	}
}

// Query answers one page of a query (GET /v1/readings/query) as its
// caller may read it: a device it may not read is refused (403, 401); of
// a class or an organisation, such devices are skipped and counted in
// Withheld.
func (g *Gateway) Query(r *http.Request) (*client.QueryAnswer, error) {
	q, err := client.ParseReadingQuery(r.URL.Query())
	if err != nil {
		return nil, api.NewError(http.StatusBadRequest, "bad_request", err.Error())
	}
	st, caller, err := g.caller(r)
	if err != nil {
		return nil, err
	}
	a := &client.QueryAnswer{Gateway: g.id, Axis: q.Axis, Bucket: q.Bucket}
	devices, err := g.readable(st, caller, q, a)
	if err != nil {
		return nil, err
	}
	var cur *client.Cursor
	if q.Cursor != "" {
		c, _ := client.DecodeCursor(q.Cursor) // checked by ParseReadingQuery
		cur = &c
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
			full, err = g.queryBuckets(d, q, c, a)
		}
		if err != nil || full {
			return a, err
		}
	}
	return a, nil
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

// queryBuckets adds device d's buckets of q to a, from cursor c: the
// stored roll-ups for the devices' time, else computed from the raw
// readings in log order, as the roll-ups are (so both give the same
// numbers). A bucket is answered whole: those starting in
// [start of from's bucket, to).
func (g *Gateway) queryBuckets(d string, q client.ReadingQuery, c *client.Cursor, a *client.QueryAnswer) (bool, error) {
	z, _ := rollup.ParseSize(q.Bucket) // checked by ParseReadingQuery
	from, to := span(q)
	from = z.Start(from)
	after := func(typ string, start int64) bool { // at or after the cursor
		return c == nil || typ > c.Type || typ == c.Type && start >= c.Time
	}
	add := func(b rollup.Bucket) bool {
		if len(a.Buckets) >= q.Limit {
			a.Next = client.Cursor{Device: d, Type: b.Type, Time: b.Start.UnixMilli()}.Encode()
			return false
		}
		a.Buckets = append(a.Buckets, b)
		return true
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
				more = add(rollup.BucketOf(d, typ, start, agg))
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
	for _, b := range rollup.Compute(points, z) {
		if !after(b.Type, b.Start.UnixMilli()) {
			continue
		}
		if !add(b) {
			return true, nil
		}
	}
	return false, nil
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
// the devices' time, v/ keys for the receive time) from (fromMS,
// fromIdx) up to toMS, in order, until fn returns false or an error.
func (x *index) scanTimes(axis, d string, fromMS int64, fromIdx uint64, toMS int64, fn func(ms int64, i uint64) (bool, error)) error {
	lo, hi := readingKey(d, time.UnixMilli(fromMS), fromIdx), readingKey(d, time.UnixMilli(toMS), 0)
	if axis == client.AxisReceived {
		lo, hi = receivedKey(d, fromMS, fromIdx), receivedKey(d, toMS, 0)
	}
	if bytes.Compare(lo, hi) >= 0 {
		return nil
	}
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	n := len(lo) - 16 // the key's prefix, r/<device>\x00 or v/<device>\x00
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != n+16 {
			continue
		}
		more, err := fn(int64(binary.BigEndian.Uint64(k[n:])), binary.BigEndian.Uint64(k[n+8:]))
		if err != nil || !more {
			return err
		}
	}
	return it.Error()
}
