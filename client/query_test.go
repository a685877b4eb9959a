package client

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseReadingQuery(t *testing.T) {
	q, err := ParseReadingQuery(url.Values{"device": {"did:key:z6Mk"}, "from": {"2026-12-01T00:00:00.5Z"}, "to": {"1796600000000"}, "bucket": {"1h"}})
	if err != nil {
		t.Fatal(err)
	}
	want := ReadingQuery{Device: "did:key:z6Mk", From: time.UnixMilli(1796083200500).UTC(), To: time.UnixMilli(1796600000000).UTC(), Axis: AxisDevice, Bucket: "1h", Limit: DefaultQueryLimit}
	if !reflect.DeepEqual(q, want) {
		t.Fatalf("parsed %+v; want %+v", q, want)
	}
	for raw, wantErr := range map[string]string{
		"":                                 "exactly one",
		"device=a&org=b":                   "exactly one",
		"device=a&bucket=2h":               "bucket",
		"device=a&time=server":             "time",
		"device=a&limit=0":                 "limit",
		"device=a&limit=10001":             "limit",
		"device=a&from=5&to=5":             "before",
		"device=a&from=-1":                 "1970",
		"device=a&to=yesterday":            "RFC 3339",
		"device=a&cursor=xyz":              "cursor",
		"device=a&device=b":                "2 times",
		"device=a&colour=blue":             "unknown parameter",
		"device=a&from=99999999999999999":  "1970",
		"device=a&cursor=eyJkIjoiIn0":      "cursor",
		"device=a&bucket=1m&limit=1000001": "limit",
		"device=a&format=columns":          "for buckets",
		"device=a&format=xml":              "format",
	} {
		v, _ := url.ParseQuery(raw)
		if _, err := ParseReadingQuery(v); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: %v; want an error saying %q", raw, err, wantErr)
		}
	}
	if q, err := ParseReadingQuery(url.Values{"device": {"a"}, "bucket": {"1m"}, "limit": {"1000000"}, "format": {"columns"}}); err != nil || q.Limit != MaxBucketQueryLimit || q.Format != FormatColumns {
		t.Errorf("a page of a million minute buckets in columns = %+v, %v", q, err)
	}
	c := Cursor{Device: "did:key:z6Mk", Type: "t", Time: 5, Index: 7, Item: 2}
	if got, err := DecodeCursor(c.Encode()); err != nil || got != c {
		t.Fatalf("cursor round trip: %+v, %v", got, err)
	}
}

// FuzzParseReadingQuery checks that the query parser never panics, that
// it refuses what it cannot answer, and that what it accepts encodes
// (Values) to a query it parses to the same.
func FuzzParseReadingQuery(f *testing.F) {
	for _, s := range []string{
		"device=did:key:z6Mk&bucket=1m&from=0&to=1000",
		"class=sensor&time=received&bucket=1d&limit=10&format=csv",
		"device=x&bucket=1m&limit=600000&format=columns",
		"org=acme&type=temperature/celsius&from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00.123456Z",
		"device=x&cursor=" + Cursor{Device: "x", Time: 9, Index: 3, Item: 1}.Encode(),
		"device=x&from=253402300799999",
		"device=&class=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseReadingQuery(v)
		if err != nil {
			return
		}
		if q.Limit < 1 || q.Limit > MaxBucketQueryLimit || q.Bucket == BucketRaw && q.Limit > MaxQueryLimit || (q.Device == "") == (q.Class == "" && q.Org == "") && q.Device == "" {
			t.Fatalf("accepted %q as %+v", raw, q)
		}
		again, err := ParseReadingQuery(q.Values())
		if err != nil {
			t.Fatalf("%q parsed to %+v, whose Values %q do not parse: %v", raw, q, q.Values().Encode(), err)
		}
		if !reflect.DeepEqual(again, q) {
			t.Fatalf("%q: %+v, then %+v", raw, q, again)
		}
	})
}
