package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/record"
)

// upgradeApproval is what `upgrade approve` prints and `upgrade plan` reads.
type upgradeApproval struct {
	ChainID    string `json:"chain_id"`
	Seq        uint64 `json:"seq"`
	Name       string `json:"name"`
	Height     int64  `json:"height"` // 0 cancels
	AppVersion uint64 `json:"app_version"`
	Info       string `json:"info,omitempty"`
	Validator  string `json:"validator"` // base64 consensus key of the approving validator
	Signature  string `json:"signature"` // base64
}

func upgradeCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "upgrade", Short: "Plan a software upgrade of the network (approved by validators holding more than 2/3 of the power), cancel it, show it"}
	var a upgradeApproval
	var home string
	approve := &cobra.Command{
		Use:   "approve --seq N --name NAME --height H --app-version V [--info TEXT]",
		Short: "Sign an approval of an upgrade plan (or, with --height 0, of its cancellation) with this node's consensus key (prints JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m := &record.UpgradePlan{Name: a.Name, Height: a.Height, AppVersion: a.AppVersion, Info: a.Info, Seq: a.Seq,
				Approvals: []record.Approval{{Validator: make([]byte, 32), Signature: make([]byte, 64)}}}
			if err := m.ValidateBasic(); err != nil {
				return err
			}
			if a.ChainID == "" {
				return fmt.Errorf("--chain-id is required")
			}
			pub, sig, err := chain.SignWithValidatorKey(home, record.UpgradePlanMessage(a.ChainID, a.Seq, a.Name, a.Height, a.AppVersion, a.Info))
			if err != nil {
				return err
			}
			out := a
			out.Validator, out.Signature = base64.StdEncoding.EncodeToString(pub), base64.StdEncoding.EncodeToString(sig)
			return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
		},
	}
	f := approve.Flags()
	f.StringVar(&home, "home", filepath.Join(defaultHome(), "node"), "home of the approving validator node")
	f.StringVar(&a.ChainID, "chain-id", "", "chain id")
	f.Uint64Var(&a.Seq, "seq", 0, "upgrade sequence number (the last plan's or cancellation's + 1; the first is 1; see `upgrade show`)")
	f.StringVar(&a.Name, "name", "", "upgrade name, as the release that carries its migration knows it")
	f.Int64Var(&a.Height, "height", 0, "block at whose start the upgrade happens (0: cancel the pending plan of this name)")
	f.Uint64Var(&a.AppVersion, "app-version", 0, "application version from that block on")
	f.StringVar(&a.Info, "info", "", "what operators need: the release's address and digest")

	var tf txFlags
	plan := &cobra.Command{
		Use:   "plan APPROVAL.json...",
		Short: "Submit an upgrade plan (or its cancellation) with the collected approvals",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var want *upgradeApproval
			first, approvals, err := readApprovals(args, func(file string, a *upgradeApproval) error {
				if want == nil {
					want = a
				} else if a.Seq != want.Seq || a.Name != want.Name || a.Height != want.Height || a.AppVersion != want.AppVersion || a.Info != want.Info {
					return fmt.Errorf("%s approves a different plan than the others", file)
				}
				return nil
			}, func(a *upgradeApproval) (string, string) { return a.Validator, a.Signature })
			if err != nil {
				return err
			}
			return g.send(cmd, &tf, &record.UpgradePlan{Name: first.Name, Height: first.Height, AppVersion: first.AppVersion, Info: first.Info, Seq: first.Seq, Approvals: approvals})
		},
	}
	tf.register(plan)

	show := &cobra.Command{
		Use:   "show",
		Short: "Show the ledger's application version, the pending upgrade and the upgrades done",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var u api.Upgrades
			if err := g.client().Get(cmd.Context(), "/v1/upgrade", &u); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), &u, func(w io.Writer) {
				fmt.Fprintf(w, "application version %d at height %d; last upgrade sequence %d (the next plan is %d)\n", u.AppVersion, u.Height, u.Seq, u.Seq+1)
				if p := u.Pending; p != nil {
					fmt.Fprintf(w, "pending: %s at height %d → application version %d (planned at %d, seq %d)", p.Name, p.Height, p.AppVersion, p.Planned, p.Seq)
					if p.Info != "" {
						fmt.Fprintf(w, ": %s", p.Info)
					}
					fmt.Fprintln(w)
				} else {
					fmt.Fprintln(w, "pending: none")
				}
				for _, d := range u.Done {
					fmt.Fprintf(w, "done: %s at height %d → application version %d\n", d.Name, d.Height, d.AppVersion)
				}
			})
		},
	}
	c.AddCommand(approve, plan, show)
	return c
}
