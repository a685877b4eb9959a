package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/rollup"
)

// readingsQueryCmd is `thingnet readings query`: GET /v1/readings/query of
// the node's gateway, every page, or with --network of every gateway on
// the ledger, merged (client.QueryNetwork).
func readingsQueryCmd(g *globals) *cobra.Command {
	var dev, class, org, typ, from, to, axis, bucket string
	var pageSize, max int
	var network bool
	var gateways []string
	c := &cobra.Command{
		Use:   "query",
		Short: "Query readings you may read: raw or in 1m/1h/1d buckets, of a device, a class or an organisation, over a time range",
		Example: `  thingnet readings query --device sensor-1 --from 2026-12-01T00:00:00Z --bucket 1h --identity admin
  thingnet readings query --org demo --type temperature/celsius --bucket 1d -o csv
  thingnet readings query --device DID --network          # every gateway registered on the ledger, each reading once`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := client.ReadingQuery{Class: class, Org: org, Type: typ, Axis: axis, Bucket: bucket, Limit: pageSize}
			if dev != "" {
				id, err := g.resolveID(dev)
				if err != nil {
					return err
				}
				q.Device = id
			}
			q, err := withRange(q, from, to)
			if err != nil {
				return err
			}
			if pageSize == 0 {
				q.Limit = 0
			}
			if g.output != "text" && g.output != "json" && g.output != "csv" {
				return fmt.Errorf("--output %q: use text, csv or json", g.output)
			}
			ctx := cmd.Context()
			base := g.client()
			out := cmd.OutOrStdout()
			if network || len(gateways) > 0 {
				var gws []client.NetworkGateway
				if network {
					if gws, err = base.NetworkGateways(ctx); err != nil {
						return err
					}
				}
				gws = withURLs(gws, append([]string{g.node}, gateways...))
				dial := func(u string) *client.Client { return base.At(u) }
				a := client.QueryNetwork(ctx, gws, dial, q)
				if max > 0 {
					a.Items = a.Items[:min(len(a.Items), max)]
					a.Buckets = a.Buckets[:min(len(a.Buckets), max)]
				}
				if g.output == "csv" {
					if err := client.WriteQueryCSV(out, a.Bucket, a.Items, a.Buckets); err != nil {
						return err
					}
				} else if err := g.print(out, a, func(w io.Writer) { printQuery(w, a.Bucket, a.Items, a.Buckets) }); err != nil {
					return err
				}
				errw := cmd.ErrOrStderr()
				for _, gw := range a.Gateways {
					switch {
					case gw.Answered:
						fmt.Fprintf(errw, "gateway %s (%s): answered %d readings, %d devices withheld\n", short(gw.ID), gw.URL, gw.Readings, gw.Withheld)
					default:
						fmt.Fprintf(errw, "gateway %s (%s): NOT ANSWERED: %s\n", short(gw.ID), gw.URL, gw.Error)
					}
				}
				fmt.Fprintf(errw, "%d readings answered by more than one gateway, given once\n", a.Duplicates)
				return nil
			}
			var items []client.ReadingItem
			var buckets []rollup.Bucket
			withheld, devices := 0, 0
			err = base.QueryAll(ctx, q, func(a *client.QueryAnswer) error {
				items, buckets = append(items, a.Items...), append(buckets, a.Buckets...)
				withheld, devices = a.Withheld, a.Devices
				if max > 0 && len(items)+len(buckets) >= max {
					items, buckets = items[:min(len(items), max)], buckets[:min(len(buckets), max)]
					return errEnough
				}
				return nil
			})
			if err != nil && err != errEnough {
				return err
			}
			if withheld > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d devices withheld: you may not read them (authenticate with --identity, or ask for a read grant)\n", withheld)
			}
			if g.output == "csv" {
				return client.WriteQueryCSV(out, q.Bucket, items, buckets)
			}
			ans := &client.QueryAnswer{Axis: q.Axis, Bucket: q.Bucket, Items: items, Buckets: buckets, Devices: devices, Withheld: withheld}
			return g.print(out, ans, func(w io.Writer) { printQuery(w, q.Bucket, items, buckets) })
		},
	}
	f := c.Flags()
	f.StringVar(&dev, "device", "", "a device id or keystore name")
	f.StringVar(&class, "class", "", "every device of this class (those you may read)")
	f.StringVar(&org, "org", "", "every device of this organisation (those you may read)")
	f.StringVar(&typ, "type", "", "only this content type, e.g. temperature/celsius")
	f.StringVar(&from, "from", "", "from this time (RFC 3339 or Unix ms)")
	f.StringVar(&to, "to", "", "until this time (exclusive)")
	f.StringVar(&axis, "time", client.AxisDevice, "the time the range is of: device (as the devices dated the readings) or received (the gateway's receive time)")
	f.StringVar(&bucket, "bucket", client.BucketRaw, "raw, 1m, 1h or 1d")
	f.IntVar(&pageSize, "page-size", 0, fmt.Sprintf("readings (1..%d) or buckets (1..%d) per request (default %d)", client.MaxQueryLimit, client.MaxBucketQueryLimit, client.DefaultQueryLimit))
	f.IntVar(&max, "max", 0, "stop after this many readings or buckets (0: all)")
	f.BoolVar(&network, "network", false, "ask every gateway registered on the ledger (their api label names their API) and merge: each reading once")
	f.StringArrayVar(&gateways, "gateway", nil, "also ask the gateway at this API URL (repeat); with it, the answers are merged as with --network")
	return c
}

// withRange is q over the --from and --to flags, checked by the one
// parser the flags and the API share, as the gateway will check them.
func withRange(q client.ReadingQuery, from, to string) (client.ReadingQuery, error) {
	v := q.Values()
	if from != "" {
		v.Set("from", from)
	}
	if to != "" {
		v.Set("to", to)
	}
	return client.ParseReadingQuery(v)
}

type enough struct{}

func (enough) Error() string { return "enough" }

var errEnough error = enough{}

// withURLs adds to gws the gateways at urls not already in it; their ids
// come with their answers.
func withURLs(gws []client.NetworkGateway, urls []string) []client.NetworkGateway {
	have := map[string]bool{}
	for _, g := range gws {
		have[strings.TrimRight(g.URL, "/")] = true
	}
	for _, u := range urls {
		if u = strings.TrimRight(u, "/"); u != "" && !have[u] {
			have[u] = true
			gws = append(gws, client.NetworkGateway{URL: u})
		}
	}
	return gws
}

func short(id string) string {
	if len(id) > 24 {
		return id[:24] + "…"
	}
	if id == "" {
		return "?"
	}
	return id
}

// printQuery prints readings or buckets as a table.
func printQuery(w io.Writer, bucket string, items []client.ReadingItem, buckets []rollup.Bucket) {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	if bucket == client.BucketRaw || bucket == "" {
		fmt.Fprintf(w, "%-26s %-8s %-24s %-24s %-22s %s\n", "DEVICE", "SEQ", "TIME", "RECEIVED", "TYPE", "VALUE")
		for _, it := range items {
			val := "(bytes)"
			switch {
			case it.Value != nil:
				val = f(*it.Value)
			case it.Sealed != nil:
				val = "(sealed)"
			}
			rec := "-"
			if it.ReceivedAt != nil {
				rec = it.ReceivedAt.UTC().Format(time.RFC3339Nano)
			}
			if it.Late {
				val += " (late)"
			}
			fmt.Fprintf(w, "%-26s %-8d %-24s %-24s %-22s %s\n", short(it.Device), it.Seq, it.Time.UTC().Format(time.RFC3339Nano), rec, it.ContentType, val)
		}
		fmt.Fprintf(w, "%d readings\n", len(items))
		return
	}
	fmt.Fprintf(w, "%-26s %-22s %-20s %8s %10s %10s %10s %10s\n", "DEVICE", "TYPE", "START", "COUNT", "MIN", "MAX", "MEAN", "LAST")
	for _, b := range buckets {
		mean := "-"
		if b.Mean != nil {
			mean = f(*b.Mean)
		}
		fmt.Fprintf(w, "%-26s %-22s %-20s %8d %10s %10s %10s %10s\n", short(b.Device), b.Type, b.Start.UTC().Format(time.RFC3339), b.Count, f(b.Min), f(b.Max), mean, f(b.Last))
	}
	fmt.Fprintf(w, "%d buckets\n", len(buckets))
}
