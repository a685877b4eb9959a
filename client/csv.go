package client

import (
	"encoding/csv"
	"io"
	"strconv"
	"time"

	"github.com/thingnet/thingnet/rollup"
)

// WriteQueryCSV writes a query's answer as CSV with a header line: raw
// readings (bucket "raw": numeric values; a sealed or byte-string value
// leaves value empty and kind says which) or buckets.
func WriteQueryCSV(w io.Writer, bucket string, items []ReadingItem, buckets []rollup.Bucket) error {
	c := csv.NewWriter(w)
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	if bucket == BucketRaw || bucket == "" {
		c.Write([]string{"device", "seq", "time", "received_at", "type", "kind", "value", "late", "gateway", "index"})
		for _, it := range items {
			kind, val := "number", ""
			switch {
			case it.Value != nil:
				val = f(*it.Value)
			case it.Sealed != nil:
				kind = "sealed"
			default:
				kind = "bytes"
			}
			rec := ""
			if it.ReceivedAt != nil {
				rec = it.ReceivedAt.UTC().Format(time.RFC3339Nano)
			}
			c.Write([]string{it.Device, strconv.FormatUint(it.Seq, 10), it.Time.UTC().Format(time.RFC3339Nano), rec, it.ContentType,
				kind, val, strconv.FormatBool(it.Late), it.Gateway, strconv.FormatUint(it.Index, 10)})
		}
	} else {
		c.Write([]string{"device", "type", "start", "count", "min", "max", "sum", "mean", "last"})
		for _, b := range buckets {
			sum, mean := "", ""
			if b.Sum != nil {
				sum, mean = f(*b.Sum), f(*b.Mean)
			}
			c.Write([]string{b.Device, b.Type, b.Start.UTC().Format(time.RFC3339), strconv.FormatUint(b.Count, 10), f(b.Min), f(b.Max), sum, mean, f(b.Last)})
		}
	}
	c.Flush()
	return c.Error()
}
