package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/thingnet/thingnet/rollup"
)

// ReadingQuery is a query of GET /v1/readings/query (docs/data.md): the
// readings of one device, of a class or of an organisation, of one content
// type or all, in a time range by the devices' time or the gateway's
// receive time, raw or in buckets.
type ReadingQuery struct {
	// Exactly one of Device, Class and Org.
	Device, Class, Org string
	// Type is a content type ("temperature/celsius"); "" for all.
	Type string
	// From and To bound the range [From, To); zero for unbounded.
	// Millisecond precision.
	From, To time.Time
	// Axis is AxisDevice (the default) or AxisReceived.
	Axis string
	// Bucket is "raw" (the default), "1m", "1h" or "1d".
	Bucket string
	// Limit is the page size: 1 to MaxQueryLimit; 0 for DefaultQueryLimit.
	Limit int
	// Cursor resumes after the previous page (QueryAnswer.Next).
	Cursor string
	// Format is the answer's encoding: FormatJSON (rows, the default),
	// FormatColumns (buckets as Series) or FormatCSV (not for
	// QueryReadings, which decodes JSON); "" lets the Accept header
	// decide.
	Format string
}

// Query axes and limits.
const (
	AxisDevice        = "device"   // the readings' own time, as the devices dated them
	AxisReceived      = "received" // the time the gateway received them (entries of layout 3)
	BucketRaw         = "raw"
	DefaultQueryLimit = 1000
	MaxQueryLimit     = 10000 // of raw readings a page
	// MaxBucketQueryLimit is the most buckets a page holds: a year of
	// minute buckets (525,600) and more, in one request.
	MaxBucketQueryLimit = 1_000_000
	FormatJSON          = "json"
	FormatCSV           = "csv"
	FormatColumns       = "columns"
	maxQueryMillis      = 253402300799999 // 9999-12-31T23:59:59.999Z, the readings' latest time
	// maxQueryAnswer bounds the bytes of a page QueryReadings reads: a
	// page of a million buckets in rows is about 270 MB.
	maxQueryAnswer = 512 << 20
)

// QueryAnswer is a page of GET /v1/readings/query. Items (raw) or Buckets
// hold what the caller may read; Withheld counts the devices of the class
// or organisation it may not read, skipped. Next is the cursor of the
// following page, empty on the last.
//
// Buckets asked for with format=columns come in Series instead of
// Buckets.
type QueryAnswer struct {
	Gateway  string          `json:"gateway"`
	Axis     string          `json:"time"`
	Bucket   string          `json:"bucket"`
	Items    []ReadingItem   `json:"items,omitempty"`
	Buckets  []rollup.Bucket `json:"buckets,omitempty"`
	Series   []Series        `json:"series,omitempty"`
	Devices  int             `json:"devices"`
	Withheld int             `json:"withheld,omitempty"`
	Next     string          `json:"next,omitempty"`
}

// Series is a page's buckets of one device and content type in columns
// (format=columns, docs/data.md): bucket i starts at T[i] (Unix ms) and
// holds Count[i] readings, their Min[i], Max[i], Sum[i], Mean[i] and
// Last[i]. Sum and Mean are NaN (null in JSON) where the sum overflows.
// A series holds at most 8,192 buckets: a longer run of a device's
// buckets of one type comes as consecutive series of the same device and
// type, as does a run that goes on in the next page.
type Series struct {
	Device string `json:"device"`
	Type   string `json:"type"`
	T      Ints   `json:"t"`
	Count  Ints   `json:"count"`
	Min    Floats `json:"min"`
	Max    Floats `json:"max"`
	Sum    Floats `json:"sum"`
	Mean   Floats `json:"mean"`
	Last   Floats `json:"last"`
}

// Len is the number of buckets in s.
func (s *Series) Len() int { return len(s.T) }

// Values is q as query parameters: times as Unix milliseconds.
func (q ReadingQuery) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("device", q.Device)
	set("class", q.Class)
	set("org", q.Org)
	set("type", q.Type)
	if !q.From.IsZero() {
		v.Set("from", strconv.FormatInt(q.From.UnixMilli(), 10))
	}
	if !q.To.IsZero() {
		v.Set("to", strconv.FormatInt(q.To.UnixMilli(), 10))
	}
	if q.Axis != "" && q.Axis != AxisDevice {
		v.Set("time", q.Axis)
	}
	if q.Bucket != "" && q.Bucket != BucketRaw {
		v.Set("bucket", q.Bucket)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	set("cursor", q.Cursor)
	set("format", q.Format)
	return v
}

// ParseReadingQuery reads and checks the parameters of GET
// /v1/readings/query (format, the answer's encoding, is the server's).
// Defaults are filled in: Axis, Bucket and Limit are set in the result.
func ParseReadingQuery(v url.Values) (ReadingQuery, error) {
	for k, vs := range v {
		switch k {
		case "device", "class", "org", "type", "from", "to", "time", "bucket", "limit", "cursor", "format":
		default:
			return ReadingQuery{}, fmt.Errorf("unknown parameter %q: want device, class, org, type, from, to, time, bucket, limit, cursor, format", k)
		}
		if len(vs) > 1 {
			return ReadingQuery{}, fmt.Errorf("parameter %q is given %d times", k, len(vs))
		}
	}
	q := ReadingQuery{Device: v.Get("device"), Class: v.Get("class"), Org: v.Get("org"), Type: v.Get("type"),
		Axis: v.Get("time"), Bucket: v.Get("bucket"), Cursor: v.Get("cursor"), Format: v.Get("format")}
	n := 0
	for _, s := range []string{q.Device, q.Class, q.Org} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return q, errors.New("name exactly one of device=DID, class=CLASS, org=ORG")
	}
	for name, s := range map[string]string{"device": q.Device, "class": q.Class, "org": q.Org, "type": q.Type} {
		if len(s) > 256 {
			return q, fmt.Errorf("%s is %d bytes, at most 256", name, len(s))
		}
	}
	var err error
	if q.From, err = parseQueryTime(v.Get("from")); err != nil {
		return q, fmt.Errorf("from: %w", err)
	}
	if q.To, err = parseQueryTime(v.Get("to")); err != nil {
		return q, fmt.Errorf("to: %w", err)
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, fmt.Errorf("from (%s) must be before to (%s)", q.From.UTC().Format(time.RFC3339Nano), q.To.UTC().Format(time.RFC3339Nano))
	}
	switch q.Axis {
	case "":
		q.Axis = AxisDevice
	case AxisDevice, AxisReceived:
	default:
		return q, fmt.Errorf("time %q: want device (the readings' own time) or received (the gateway's receive time)", q.Axis)
	}
	if q.Bucket == "" {
		q.Bucket = BucketRaw
	} else if q.Bucket != BucketRaw {
		if _, err := rollup.ParseSize(q.Bucket); err != nil {
			return q, err
		}
	}
	switch q.Format {
	case "", FormatJSON, FormatCSV:
	case FormatColumns:
		if q.Bucket == BucketRaw {
			return q, errors.New("format columns is for buckets: add bucket=1m, 1h or 1d")
		}
	default:
		return q, fmt.Errorf("format %q: want json, csv or columns", q.Format)
	}
	q.Limit = DefaultQueryLimit
	if s := v.Get("limit"); s != "" {
		most := MaxQueryLimit
		if q.Bucket != BucketRaw {
			most = MaxBucketQueryLimit
		}
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 1 || q.Limit > most {
			return q, fmt.Errorf("limit %q: want 1 to %d (page on with cursor)", s, most)
		}
	}
	if q.Cursor != "" {
		if _, err := DecodeCursor(q.Cursor); err != nil {
			return q, err
		}
	}
	return q, nil
}

// parseQueryTime reads RFC 3339 or Unix milliseconds, 1970 to 9999;
// "" is the zero time (unbounded).
func parseQueryTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	var ms int64
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		ms = n
	} else {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor Unix milliseconds", s)
		}
		ms = t.UnixMilli()
	}
	if ms < 0 || ms > maxQueryMillis {
		return time.Time{}, fmt.Errorf("%q is outside 1970 to 9999", s)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// Cursor is where a page of a query ends: the next reading (device, time
// on the query's axis, log index, place in its envelope) or bucket
// (device, type, start) to answer.
type Cursor struct {
	Device string `json:"d"`
	Type   string `json:"y,omitempty"`
	Time   int64  `json:"t"`
	Index  uint64 `json:"i,omitempty"`
	Item   int    `json:"k,omitempty"`
}

// Encode is c as a query parameter.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor made by Encode.
func DecodeCursor(s string) (Cursor, error) {
	var c Cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Device == "" || c.Time < 0 || c.Item < 0 || c.Item > 1<<16 {
		return Cursor{}, fmt.Errorf("cursor %q is not one this API made: pass the next of the previous page", truncate(s, 40))
	}
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// QueryReadings asks for one page of a query (GET /v1/readings/query).
func (c *Client) QueryReadings(ctx context.Context, q ReadingQuery) (*QueryAnswer, error) {
	if q.Format == FormatCSV {
		return nil, errors.New("query: QueryReadings decodes JSON: ask for format json or columns (WriteQueryCSV writes CSV)")
	}
	var a QueryAnswer
	if err := c.doMax(ctx, http.MethodGet, "/v1/readings/query?"+q.Values().Encode(), nil, "", &a, maxQueryAnswer); err != nil {
		return nil, fmt.Errorf("query of %s: %w", c.BaseURL, err)
	}
	return &a, nil
}

// QueryAll pages through a query from q.Cursor, calling fn with each page
// until the last or until fn returns an error.
func (c *Client) QueryAll(ctx context.Context, q ReadingQuery, fn func(*QueryAnswer) error) error {
	for {
		a, err := c.QueryReadings(ctx, q)
		if err != nil {
			return err
		}
		if err := fn(a); err != nil {
			return err
		}
		if a.Next == "" {
			return nil
		}
		q.Cursor = a.Next
	}
}
