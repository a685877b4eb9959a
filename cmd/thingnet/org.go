package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

func orgCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "org", Short: "Organisations (tenants) and their admins"}
	var tf txFlags
	var name string
	create := &cobra.Command{
		Use:   "create ID",
		Short: "Create an organisation; the signing key becomes its first admin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.send(cmd, &tf, &record.OrgCreate{ID: args[0], Name: name})
		},
	}
	tf.register(create)
	create.Flags().StringVar(&name, "name", "", "display name")

	admin := &cobra.Command{Use: "admin", Short: "Add or remove an organisation's admins"}
	var tfa txFlags
	add := &cobra.Command{
		Use: "add ORG ADMIN", Short: "Add an admin (a did:key or a keystore key name)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := g.resolveID(args[1])
			if err != nil {
				return err
			}
			return g.send(cmd, &tfa, record.NewOrgAdminAdd(args[0], id))
		},
	}
	tfa.register(add)
	var tfr txFlags
	remove := &cobra.Command{
		Use: "remove ORG ADMIN", Short: "Remove an admin", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := g.resolveID(args[1])
			if err != nil {
				return err
			}
			return g.send(cmd, &tfr, record.NewOrgAdminRemove(args[0], id))
		},
	}
	tfr.register(remove)
	admin.AddCommand(add, remove)

	var prove bool
	show := &cobra.Command{
		Use: "show ID", Short: "Show an organisation", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var o record.Org
			if err := g.getRecord(cmd, "/v1/orgs/"+url.PathEscape(args[0]), prove, &o); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), o, func(w io.Writer) {
				fmt.Fprintf(w, "id:      %s\nname:    %s\nadmins:  %s\ndevices: %d\ncreated: height %d\n", o.ID, o.Name, strings.Join(o.Admins, "\n         "), o.Devices, o.Created)
			})
		},
	}
	show.Flags().BoolVar(&prove, "prove", false, "fetch a proof and check it against the signed header")
	list := &cobra.Command{
		Use: "list", Short: "List organisations", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p struct {
				Items []record.Org `json:"items"`
			}
			if err := g.client().Get(cmd.Context(), "/v1/orgs", &p); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), p.Items, func(w io.Writer) {
				for _, o := range p.Items {
					fmt.Fprintf(w, "%-20s %-30s %d admins, %d devices\n", o.ID, o.Name, len(o.Admins), o.Devices)
				}
			})
		},
	}
	c.AddCommand(create, admin, show, list)
	return c
}

// getRecord reads a record; with prove it fetches the proof and checks it
// against the header signed by the validators, and says so on stderr.
func (g *globals) getRecord(cmd *cobra.Command, path string, prove bool, rec any) error {
	cl := g.client()
	if !prove {
		var r struct {
			Record any `json:"record"`
		}
		r.Record = rec
		return cl.Get(cmd.Context(), path, &r)
	}
	p, found, err := cl.ProvedRecord(cmd.Context(), path, rec)
	if err != nil {
		return err
	}
	st, err := cl.Status(cmd.Context())
	if err != nil {
		return err
	}
	v, err := cl.VerifyProof(cmd.Context(), st.ChainID, p)
	if err != nil {
		return fmt.Errorf("PROOF FAILED: %w", err)
	}
	printProof(cmd, p, v)
	if !found {
		return fmt.Errorf("%s does not exist: proved absent at height %d", path, p.Height)
	}
	return nil
}

func printProof(cmd *cobra.Command, p *record.Proof, v *client.VerifiedProof) {
	what := "present"
	if p.Value == nil {
		what = "absent"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "proof: OK — key %q is "+what+" at height %d, in the state whose app hash %X is in header %d, signed by the validators (%d); ics23 proof of %d bytes\n",
		p.Key, v.Height, v.AppHash, v.Header, v.Validators, len(p.Proof))
}
