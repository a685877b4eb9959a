package client

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/thingnet/thingnet/record"
	"github.com/thingnet/thingnet/rollup"
)

// GatewayAPILabel is the ledger label of a gateway (a device of class
// "gateway") that names the base URL of its API, where network queries
// reach it: thingnet device update GATEWAY --label api=https://gw.example.
const GatewayAPILabel = "api"

// NetworkGateway is one gateway of a network query and what became of it.
type NetworkGateway struct {
	ID       string `json:"id,omitempty"`  // its device id on the ledger (or as it answered)
	URL      string `json:"url,omitempty"` // its API, from its api label or given
	Answered bool   `json:"answered"`
	Readings int    `json:"readings"`           // raw readings it answered
	Withheld int    `json:"withheld,omitempty"` // devices it held that the caller may not read
	Error    string `json:"error,omitempty"`    // why it was not asked, or did not answer
}

// NetworkAnswer is a query answered by several gateways, merged: each
// reading once (by device and sequence number), buckets computed from the
// de-duplicated raw readings.
type NetworkAnswer struct {
	Axis       string           `json:"time"`
	Bucket     string           `json:"bucket"`
	Items      []ReadingItem    `json:"items,omitempty"`
	Buckets    []rollup.Bucket  `json:"buckets,omitempty"`
	Duplicates int              `json:"duplicates"` // readings more than one gateway answered, given once
	Gateways   []NetworkGateway `json:"gateways"`
}

// NetworkGateways lists the gateways registered on the ledger behind c
// (devices of class gateway), each with the URL of its api label; a
// gateway without one has Error set and cannot be asked.
func (c *Client) NetworkGateways(ctx context.Context) ([]NetworkGateway, error) {
	var out []NetworkGateway
	after := ""
	for {
		var page struct {
			Items []record.Device `json:"items"`
			Next  string          `json:"next"`
		}
		q := url.Values{"limit": {"1000"}}
		if after != "" {
			q.Set("after", after)
		}
		if err := c.Get(ctx, "/v1/devices?"+q.Encode(), &page); err != nil {
			return nil, fmt.Errorf("listing the gateways on the ledger: %w", err)
		}
		for _, d := range page.Items {
			if d.Class != record.ClassGateway {
				continue
			}
			g := NetworkGateway{ID: d.ID, URL: d.Labels[GatewayAPILabel]}
			if g.URL == "" {
				g.Error = fmt.Sprintf("no %s label on the ledger names its API (thingnet device update %s --label %s=URL)", GatewayAPILabel, d.ID, GatewayAPILabel)
			}
			out = append(out, g)
		}
		if page.Next == "" || len(page.Items) == 0 {
			return out, nil
		}
		after = page.Next
	}
}

// QueryNetwork asks every gateway of gws that has a URL (through clients
// made by dial, which carry the caller's identity) for q's raw readings,
// every page, at once, and merges them: each reading once, by device and
// sequence number (of copies, the earliest receive time is kept). For a
// bucketed q the buckets are computed from the merged readings in order of
// device, time and seq (a gateway's own roll-ups add in its log order: the
// counts, minima, maxima and last values agree; a sum may differ in its
// last bits when readings arrived out of order). A gateway that fails is
// reported in Gateways with its error; the others are still merged.
func QueryNetwork(ctx context.Context, gws []NetworkGateway, dial func(url string) *Client, q ReadingQuery) *NetworkAnswer {
	bucket := q.Bucket
	if bucket == "" {
		bucket = BucketRaw
	}
	axis := q.Axis
	if axis == "" {
		axis = AxisDevice
	}
	raw := q
	raw.Bucket, raw.Cursor = BucketRaw, ""
	if raw.Limit == 0 {
		raw.Limit = MaxQueryLimit
	}
	if z, err := rollup.ParseSize(bucket); err == nil {
		// Whole buckets, as a gateway answers them.
		if !raw.From.IsZero() {
			raw.From = time.UnixMilli(z.Start(raw.From.UnixMilli())).UTC()
		}
		if !raw.To.IsZero() {
			raw.To = time.UnixMilli(min(z.Start(raw.To.UnixMilli()-1)+z.MS, maxQueryMillis)).UTC()
		}
	}
	items := make([][]ReadingItem, len(gws))
	var wg sync.WaitGroup
	for i := range gws {
		g := &gws[i]
		if g.URL == "" {
			continue
		}
		wg.Go(func() {
			err := dial(g.URL).QueryAll(ctx, raw, func(a *QueryAnswer) error {
				if g.ID == "" {
					g.ID = a.Gateway
				}
				g.Withheld = a.Withheld
				items[i] = append(items[i], a.Items...)
				return nil
			})
			if err != nil {
				g.Error = err.Error()
				items[i] = nil
				return
			}
			g.Answered, g.Readings = true, len(items[i])
		})
	}
	wg.Wait()
	type key struct {
		device string
		seq    uint64
	}
	best := map[key]ReadingItem{}
	n := 0
	for _, its := range items {
		for _, it := range its {
			n++
			k := key{it.Device, it.Seq}
			if o, ok := best[k]; ok && !earlier(it, o) {
				continue
			}
			best[k] = it
		}
	}
	out := &NetworkAnswer{Axis: axis, Bucket: bucket, Duplicates: n - len(best), Gateways: gws}
	merged := make([]ReadingItem, 0, len(best))
	for _, it := range best {
		merged = append(merged, it)
	}
	at := func(it ReadingItem) int64 {
		if axis == AxisReceived && it.ReceivedAt != nil {
			return it.ReceivedAt.UnixMilli()
		}
		return it.Time.UnixMilli()
	}
	slices.SortFunc(merged, func(a, b ReadingItem) int {
		return cmp.Or(cmp.Compare(a.Device, b.Device), cmp.Compare(at(a), at(b)), cmp.Compare(a.Seq, b.Seq))
	})
	if bucket == BucketRaw {
		out.Items = merged
		return out
	}
	z, err := rollup.ParseSize(bucket)
	if err != nil {
		for i := range out.Gateways {
			out.Gateways[i].Error = err.Error()
		}
		return out
	}
	var pts []rollup.Point
	for _, it := range merged {
		if it.Value != nil {
			pts = append(pts, rollup.Point{Device: it.Device, Type: it.ContentType, Time: at(it), Seq: it.Seq, Value: *it.Value})
		}
	}
	out.Buckets = rollup.Compute(pts, z)
	return out
}

// earlier says whether a was received before b (a copy without a receive
// time counts as later).
func earlier(a, b ReadingItem) bool {
	switch {
	case a.ReceivedAt == nil:
		return false
	case b.ReceivedAt == nil:
		return true
	}
	return a.ReceivedAt.Before(*b.ReceivedAt)
}
