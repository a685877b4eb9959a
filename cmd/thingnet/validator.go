package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/ledger"
)

// approvalFile is what `validator approve` writes and `validator update` reads.
type approvalFile struct {
	ChainID   string `json:"chain_id"`
	Seq       uint64 `json:"seq"`
	PubKey    string `json:"pub_key"` // base64, the validator being changed
	Power     int64  `json:"power"`
	Validator string `json:"validator"` // base64, the approving validator
	Signature string `json:"signature"` // base64
}

func validatorCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "validator", Short: "Change the validator set, with approvals of more than 2/3 of the voting power"}
	var home, pub, chainID string
	var power int64
	var seq uint64
	approve := &cobra.Command{
		Use:   "approve",
		Short: "Sign an approval of a validator change with this node's consensus key (prints JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pk, err := base64.StdEncoding.DecodeString(pub)
			if err != nil || len(pk) != 32 {
				return fmt.Errorf("--pub-key must be a base64 Ed25519 key (as `thingnet node init` prints)")
			}
			if seq == 0 {
				return fmt.Errorf("--seq is required: the next validator-update sequence (last one + 1)")
			}
			vpub, sig, err := chain.SignWithValidatorKey(home, ledger.ValidatorUpdateMessage(chainID, seq, pk, power))
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(approvalFile{
				ChainID: chainID, Seq: seq, PubKey: pub, Power: power,
				Validator: base64.StdEncoding.EncodeToString(vpub), Signature: base64.StdEncoding.EncodeToString(sig),
			})
		},
	}
	af := approve.Flags()
	af.StringVar(&home, "home", filepath.Join(defaultHome(), "node"), "home of the approving validator node")
	af.StringVar(&pub, "pub-key", "", "consensus key of the validator to add, change or remove (base64)")
	af.Int64Var(&power, "power", 10, "new voting power (0 removes the validator)")
	af.Uint64Var(&seq, "seq", 0, "validator-update sequence number")
	af.StringVar(&chainID, "chain-id", "", "chain id")

	var tf txFlags
	var files []string
	update := &cobra.Command{
		Use:   "update APPROVAL.json...",
		Short: "Submit a validator change with the collected approvals",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files = args
			var m *ledger.ValidatorUpdate
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				var a approvalFile
				if err := json.Unmarshal(b, &a); err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				pk, err1 := base64.StdEncoding.DecodeString(a.PubKey)
				v, err2 := base64.StdEncoding.DecodeString(a.Validator)
				s, err3 := base64.StdEncoding.DecodeString(a.Signature)
				if err1 != nil || err2 != nil || err3 != nil {
					return fmt.Errorf("%s: bad base64 field", f)
				}
				if m == nil {
					m = &ledger.ValidatorUpdate{PubKey: pk, Power: a.Power, Seq: a.Seq}
				} else if string(m.PubKey) != string(pk) || m.Power != a.Power || m.Seq != a.Seq {
					return fmt.Errorf("%s approves a different change than the others", f)
				}
				m.Approvals = append(m.Approvals, ledger.Approval{Validator: v, Signature: s})
			}
			return g.send(cmd, &tf, m)
		},
	}
	tf.register(update)

	list := &cobra.Command{
		Use: "list", Short: "List the validators as the ledger records them", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p struct {
				Items []ledger.Validator `json:"items"`
			}
			if err := g.client().Get(cmd.Context(), "/v1/validators", &p); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), p.Items, func(w io.Writer) {
				for _, v := range p.Items {
					fmt.Fprintf(w, "%s  power %d\n", base64.StdEncoding.EncodeToString(v.PubKey), v.Power)
				}
			})
		},
	}
	c.AddCommand(approve, update, list)
	return c
}
