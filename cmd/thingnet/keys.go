package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/identity"
)

func keysCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "keys", Short: "Create and list keys (passphrase-protected key files)"}
	var alg string
	newc := &cobra.Command{
		Use:   "new NAME",
		Short: "Create a key pair and store it encrypted in the keystore",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := identity.ParseAlgorithm(alg)
			if err != nil {
				return err
			}
			k, err := identity.GenerateKey(a)
			if err != nil {
				return err
			}
			pass, err := passphrase("passphrase for the new key (empty: none)", true)
			if err != nil {
				return err
			}
			info, err := g.ks().Save(args[0], k, pass)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), info, func(w io.Writer) {
				fmt.Fprintf(w, "created %s key %q\nid:   %s\nfile: %s\n", info.Alg, info.Name, info.ID, info.Path)
			})
		},
	}
	newc.Flags().StringVar(&alg, "alg", "ed25519", "key algorithm: ed25519 or p256")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the keys in the keystore",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			infos, err := g.ks().List()
			if err != nil {
				return err
			}
			if infos == nil {
				infos = []identity.KeyInfo{}
			}
			return g.print(cmd.OutOrStdout(), infos, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tALG\tID")
				for _, i := range infos {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", i.Name, i.Alg, i.ID)
				}
				tw.Flush()
			})
		},
	}
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a key's id (its did:key) and algorithm",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := g.ks().Info(args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), info, func(w io.Writer) {
				fmt.Fprintf(w, "name: %s\nalg:  %s\nid:   %s\nfile: %s\n", info.Name, info.Alg, info.ID, info.Path)
			})
		},
	}
	c.AddCommand(newc, list, show)
	return c
}
