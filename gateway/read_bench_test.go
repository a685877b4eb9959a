package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// BenchmarkListReads measures GET /v1/readings?device=&limit=100 over
// loopback HTTP, the same 100 stored readings, with and without the read
// check's authentication: "public" is an anonymous caller reading a device
// its organisation marked public (the read rule runs, no token to
// verify); "token" is the organisation's admin with a bearer token (the
// token's Ed25519 signature checked and the rule applied on every
// request, as a node does). docs/benchmarks.md has the figures.
func BenchmarkListReads(b *testing.B) {
	tn := startTestNet(b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var rs []reading.Reading
	for i := range 100 {
		rs = append(rs, temp(uint64(i+1), float64(i)))
	}
	raw, err := reading.Sign(tn.sensor, tn.sensor.ID(), rs...)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tn.gw.IngestIndex(ctx, tn.sensor.ID(), raw, "bench"); err != nil {
		b.Fatal(err)
	}
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.OrgPolicy{Org: "acme", Public: []string{"device:" + tn.sensor.ID()}}, true); err != nil {
		b.Fatal(err)
	}
	path := "/v1/readings?limit=100&device=" + tn.sensor.ID()
	anon := client.New(tn.client.BaseURL)
	for _, c := range []struct {
		name string
		cl   *client.Client
	}{{"public", anon}, {"token", tn.client}} {
		b.Run(c.name, func(b *testing.B) {
			var page struct{ Items []client.ReadingItem }
			for b.Loop() {
				if err := c.cl.Get(ctx, path, &page); err != nil || len(page.Items) != 100 {
					b.Fatalf("%d items, %v", len(page.Items), err)
				}
			}
		})
	}
}
