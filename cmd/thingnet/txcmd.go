package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/thingnet/thingnet/client"
)

func txCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "tx", Short: "Submit signed transactions and look them up"}
	var noWait bool
	send := &cobra.Command{
		Use: "send FILE", Short: "Submit a signed transaction (raw COSE_Sign1 bytes, e.g. made by a device; - for stdin)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw []byte
			var err error
			if args[0] == "-" {
				raw, err = io.ReadAll(os.Stdin)
			} else {
				raw, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			res, err := g.client().Submit(cmd.Context(), raw, !noWait)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "tx %s: %s at height %d\n", res.Hash, res.Reason, res.Height)
			})
		},
	}
	send.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the commit")
	show := &cobra.Command{
		Use: "show HASH", Short: "Show a committed transaction", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var t client.TxInfo
			if err := g.client().Get(cmd.Context(), "/v1/txs/"+args[0], &t); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), t, func(w io.Writer) {
				msg, _ := json.MarshalIndent(t.Msg, "        ", "  ")
				fmt.Fprintf(w, "hash:   %s\nheight: %d (index %d)\nresult: %s %s\nkind:   %s\nsigner: %s\nnonce:  %d\nmsg:    %s\n", t.Hash, t.Height, t.Index, t.Reason, t.Log, t.Kind, t.Signer, t.Nonce, msg)
			})
		},
	}
	block := &cobra.Command{
		Use: "block HEIGHT", Short: "Show a block (or 'latest')", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var b client.BlockInfo
			if err := g.client().Get(cmd.Context(), "/v1/blocks/"+args[0], &b); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), b, func(w io.Writer) {
				fmt.Fprintf(w, "height:   %d\nhash:     %s\ntime:     %s\nproposer: %s\napp hash: %s\ntxs:      %d\n", b.Height, b.Hash, b.Time, b.Proposer, b.AppHash, len(b.Txs))
				for _, h := range b.Txs {
					fmt.Fprintf(w, "  %s\n", h)
				}
			})
		},
	}
	c.AddCommand(send, show, block)
	return c
}
