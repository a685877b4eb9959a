package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/gateway"
)

// archiveCmd is `thingnet archive`: a gateway's log archiving
// (docs/operations.md, "Archiving").
func archiveCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "archive", Short: "See what a node's gateway archived of its data log"}
	c.AddCommand(&cobra.Command{
		Use: "status", Short: "Show the entries the node's gateway archived and dropped, and the reads that found a segment unavailable", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st gateway.ArchiveStatus
			if err := g.client().Get(cmd.Context(), "/v1/archive", &st); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), st, func(w io.Writer) {
				fmt.Fprintf(w, "gateway:     %s\narchiving:   %v (pinning others' segments: %v)\n", st.Gateway, st.Archiving, st.Pinning)
				fmt.Fprintf(w, "archived:    entries below %d dropped here; the ledger records segments up to %d\n", st.Archived, st.Recorded)
				fmt.Fprintf(w, "since start: %d entries dropped, %d reads found a segment unavailable, %d segments re-cut after erasures\n", st.Dropped, st.Missing, st.Recut)
				if st.PendingRecut > 0 {
					fmt.Fprintf(w, "re-cut:      %d erased entries wait to be taken out of their segments\n", st.PendingRecut)
				}
			})
		},
	})
	return c
}
