package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

func orgCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "org", Short: "Organisations (tenants) and their admins"}
	var tf txFlags
	var name, depositFrom string
	var approvals []string
	create := &cobra.Command{
		Use:   "create ID",
		Short: "Create an organisation; the signing key becomes its first admin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := &record.OrgCreate{ID: args[0], Name: name, DepositFrom: depositFrom}
			if len(approvals) == 0 {
				return g.send(cmd, &tf, m)
			}
			key, err := g.loadKey(tf.key)
			if err != nil {
				return err
			}
			if m.Approvals, err = readOrgApprovals(approvals, m.ID, key.ID()); err != nil { // governance.go
				return err
			}
			return g.sendWith(cmd, key, &tf, m)
		},
	}
	tf.register(create)
	create.Flags().StringVar(&name, "name", "", "display name")
	create.Flags().StringArrayVar(&approvals, "approval", nil, "a validator's approval from `thingnet org approve` (repeat; where the network creates organisations by approval)")
	create.Flags().StringVar(&depositFrom, "deposit-from", "", "account (org:ID or device:DID) paying the deposit, where the network asks for one")

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
	admin.AddCommand(add, remove, orgRotateCmd(g))

	var tfp txFlags
	var public []string
	var retention time.Duration
	policy := &cobra.Command{
		Use:   "policy ORG [--public device:DID|class:C ...] [--retention 720h]",
		Short: "Set an organisation's privacy policy: what anyone may read, how long gateways keep reading values",
		Long: `Replaces the organisation's policy on the ledger (signed by one of its admins).

  --public     device:DID (or device:KEYNAME) or class:CLASS, repeatable: those
               devices' readings anyone may read; no mark: every value is read
               only by the device, the organisation's admins and read grantees.
  --retention  how long gateways keep a reading's value, from the reading's time
               (at least 1m; 0 keeps values for ever). Older values are dropped
               by every gateway on its own; their hashes and proofs remain.`,
		Example: `  thingnet org policy demo --key demo-admin --public class:weather --retention 720h`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := &record.OrgPolicy{Org: args[0]}
			if retention < 0 || retention%time.Second != 0 {
				return fmt.Errorf("--retention %v: a whole number of seconds, not negative", retention)
			}
			m.Retention = uint64(retention / time.Second)
			for _, p := range public {
				r, err := g.resolvePrincipal(p)
				if err != nil {
					return err
				}
				m.Public = append(m.Public, r)
			}
			slices.Sort(m.Public)
			m.Public = slices.Compact(m.Public)
			return g.send(cmd, &tfp, m)
		},
	}
	tfp.register(policy)
	policy.Flags().StringArrayVar(&public, "public", nil, "a device:DID or class:CLASS whose readings anyone may read (repeatable)")
	policy.Flags().DurationVar(&retention, "retention", 0, "how long gateways keep reading values, from the reading's time (0: for ever)")

	var prove bool
	show := &cobra.Command{
		Use: "show ID", Short: "Show an organisation", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var o record.Org
			if err := g.getRecord(cmd, "/v1/orgs/"+url.PathEscape(args[0]), prove, &o); err != nil {
				return err
			}
			var p struct {
				Record *record.Policy `json:"record"`
			}
			var ae *client.Error
			if err := g.client().Get(cmd.Context(), "/v1/orgs/"+url.PathEscape(args[0])+"/policy", &p); err != nil && !(errors.As(err, &ae) && ae.Status == 404) {
				return err
			}
			out := struct {
				record.Org
				Policy *record.Policy `json:"policy,omitempty"`
			}{Org: o}
			if p.Record != nil && p.Record.Height > 0 {
				out.Policy = p.Record
			}
			return g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "id:      %s\nname:    %s\nadmins:  %s\ndevices: %d\ncreated: height %d\n", o.ID, o.Name, strings.Join(o.Admins, "\n         "), o.Devices, o.Created)
				if pol := out.Policy; pol != nil {
					ret := "values kept for ever"
					if pol.Retention > 0 {
						ret = (time.Duration(pol.Retention) * time.Second).String()
					}
					pub := "none (values are private)"
					if len(pol.Public) > 0 {
						pub = strings.Join(pol.Public, "\n         ")
					}
					fmt.Fprintf(w, "policy:  set at height %d by %s\npublic:  %s\nretention: %s\n", pol.Height, pol.Signer, pub, ret)
					if pol.DataKey > 0 {
						fmt.Fprintf(w, "data key: version %d\n", pol.DataKey)
					}
				}
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
	c.AddCommand(create, admin, policy, show, list, dataKeyCmd(g), orgApproveCmd()) // datakey.go, governance.go
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
