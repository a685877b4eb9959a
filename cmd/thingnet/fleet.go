package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
)

// fleetCmd is `thingnet fleet`: the health of an organisation's devices
// (docs/management.md, "Fleet health").
func fleetCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "fleet", Short: "Fleet health: last seen, reported status, silent devices (docs/management.md)"}
	var o client.FleetOptions
	var org string
	var gateways, labels []string
	status := &cobra.Command{
		Use:   "status",
		Short: "Counts by class and state, then every device, the silent ones first (reads readings: needs --identity allowed to read them)",
		Example: `  thingnet fleet status --org demo --identity demo-admin
  thingnet fleet status --org demo --identity demo-admin --class temperature --missed 2 \
    --gateway http://127.0.0.1:26612 --gateway http://127.0.0.1:26622   # the network's view: ask every gateway`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if org == "" {
				return fmt.Errorf("--org is required")
			}
			var err error
			if o.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			base := g.client()
			gws := []*client.Client{base}
			for _, u := range gateways {
				cl := *base
				cl.BaseURL = u
				gws = append(gws, &cl)
			}
			f, err := client.FleetHealth(cmd.Context(), gws, org, o)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), f, func(w io.Writer) { printFleet(w, f) })
		},
	}
	fs := status.Flags()
	fs.StringVar(&org, "org", "", "the organisation")
	fs.StringVar(&o.Class, "class", "", "only this class")
	fs.StringArrayVar(&labels, "label", nil, "only devices with this label, key=value (repeatable: all must match)")
	fs.IntVar(&o.Missed, "missed", 3, "a device is silent after this many of its wake intervals without a reading")
	fs.DurationVar(&o.Wake, "wake", 5*time.Second, "the wake interval of devices whose desired configuration sets none (wake_s)")
	fs.DurationVar(&o.LookBack, "look-back", 24*time.Hour, "how far back to read readings")
	fs.StringArrayVar(&gateways, "gateway", nil, "also ask this gateway's API (repeatable): last seen is the latest any of them saw")
	c.AddCommand(status)
	return c
}

func printFleet(w io.Writer, f *client.Fleet) {
	fmt.Fprintf(w, "fleet of %s at %s (silent: %d wake intervals without a reading)\n", f.Org, f.Now.Format(time.RFC3339), f.Missed)
	for _, class := range slices.Sorted(maps.Keys(f.Counts)) {
		fmt.Fprintf(w, "  class %-16s", class)
		for _, st := range slices.Sorted(maps.Keys(f.Counts[class])) {
			fmt.Fprintf(w, " %s %d", st, f.Counts[class][st])
		}
		fmt.Fprintln(w)
	}
	for _, d := range f.Devices {
		seen := "never"
		if !d.LastSeen.IsZero() {
			seen = fmt.Sprintf("%s ago at %s", f.Now.Sub(d.LastSeen).Round(time.Second), d.Gateway)
		}
		fmt.Fprintf(w, "%-7s %s %s wake %v, last seen %s", d.State, d.Device, d.Class, d.Wake, seen)
		if s := d.Status; s != nil {
			if s.Battery != nil {
				fmt.Fprintf(w, ", battery %.0f%%", *s.Battery)
			}
			if s.Signal != nil {
				fmt.Fprintf(w, ", signal %.0f dBm", *s.Signal)
			}
			if s.Uptime != 0 {
				fmt.Fprintf(w, ", up %v", time.Duration(s.Uptime)*time.Second)
			}
			if s.FreeMem != 0 {
				fmt.Fprintf(w, ", %d bytes free", s.FreeMem)
			}
			if s.Firmware != "" {
				fmt.Fprintf(w, ", firmware %s", s.Firmware)
			}
		}
		fmt.Fprintln(w)
	}
}
