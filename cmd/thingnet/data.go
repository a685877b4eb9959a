package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/record"
)

// dataCmd is `thingnet data`: erasing readings and listing the erasures.
func dataCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "data", Short: "Erase a device's readings; list the erasures on the ledger"}
	var tf txFlags
	var m record.DataErase
	var from, to string
	erase := &cobra.Command{
		Use:   "erase --org ORG --device ID [--from T] [--to T]",
		Short: "Erase a device's reading values (all, or those timed in [from, to)) at every gateway",
		Long: `Records an erasure on the ledger (signed by an admin of the organisation).
Every gateway then destroys the values of the device's log entries with a
reading timed in [from, to) — an envelope holding one such reading is erased
whole — and keeps their hashes, so anchors and every other proof still
verify. The erasure (who, what range, when) stays on the ledger. Times are
RFC 3339 or Unix milliseconds; without --to there is no upper bound.`,
		Example: `  thingnet data erase --key demo-admin --org demo --device sensor-1 --from 2026-12-01T00:00:00Z --to 2026-12-02T00:00:00Z --reason "subject's request"
  thingnet data erase --key demo-admin --org demo --device did:key:z6Mk...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if m.Org == "" || m.Device == "" {
				return errors.New("--org and --device are required")
			}
			var err error
			if m.Device, err = g.resolveID(m.Device); err != nil {
				return err
			}
			if m.From, err = parseMillis(from); err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if m.To, err = parseMillis(to); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			return g.send(cmd, &tf, &m)
		},
	}
	tf.register(erase)
	f := erase.Flags()
	f.StringVar(&m.Org, "org", "", "the device's organisation (sign with one of its admins)")
	f.StringVar(&m.Device, "device", "", "the device (a did:key or keystore name)")
	f.StringVar(&from, "from", "", "first reading time erased, RFC 3339 or Unix ms (default: the beginning)")
	f.StringVar(&to, "to", "", "end of the range, exclusive, RFC 3339 or Unix ms (default: no bound)")
	f.StringVar(&m.Reason, "reason", "", "why, recorded on the ledger (at most 256 bytes; it is public)")

	var org, device string
	var limit int
	list := &cobra.Command{
		Use: "erasures [--org ORG] [--device ID]", Short: "List the erasures recorded on the ledger", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if device != "" {
				var err error
				if device, err = g.resolveID(device); err != nil {
					return err
				}
			}
			var all []record.Erasure
			after := ""
			for {
				q := url.Values{"limit": {strconv.Itoa(min(limit, 1000))}}
				for k, v := range map[string]string{"org": org, "device": device, "after": after} {
					if v != "" {
						q.Set(k, v)
					}
				}
				var p struct {
					Items []record.Erasure `json:"items"`
					Next  string           `json:"next"`
				}
				if err := g.client().Get(cmd.Context(), "/v1/erasures?"+q.Encode(), &p); err != nil {
					return err
				}
				all = append(all, p.Items...)
				if p.Next == "" || len(all) >= limit {
					break
				}
				after = p.Next
			}
			if len(all) > limit {
				all = all[:limit]
			}
			return g.print(cmd.OutOrStdout(), all, func(w io.Writer) {
				if len(all) == 0 {
					fmt.Fprintln(w, "no erasures")
				}
				for _, e := range all {
					fmt.Fprintf(w, "#%d  %s  %s  %s  at height %d by %s", e.Seq, e.Org, e.Device, erasedRange(e.From, e.To), e.Height, e.Signer)
					if e.Reason != "" {
						fmt.Fprintf(w, "  (%s)", e.Reason)
					}
					fmt.Fprintln(w)
				}
			})
		},
	}
	list.Flags().StringVar(&org, "org", "", "only this organisation's erasures")
	list.Flags().StringVar(&device, "device", "", "only this device's erasures (a did:key or keystore name)")
	list.Flags().IntVar(&limit, "limit", 1000, "at most this many")
	c.AddCommand(erase, list)
	return c
}

// parseMillis parses a time given as RFC 3339 or Unix milliseconds; ""
// is 0.
func parseMillis(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither RFC 3339 nor Unix milliseconds", s)
	}
	return t.UnixMilli(), nil
}

// erasedRange prints [from, to) in RFC 3339.
func erasedRange(from, to int64) string {
	end := "…"
	if to != 0 {
		end = time.UnixMilli(to).UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("[%s, %s)", time.UnixMilli(from).UTC().Format(time.RFC3339Nano), end)
}
