package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
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
	c := &cobra.Command{Use: "validator", Short: "Show validators and the evidence against them; change the set, with approvals of more than 2/3 of the voting power"}
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
			vpub, sig, err := chain.SignWithValidatorKey(home, record.ValidatorUpdateMessage(chainID, seq, pk, power))
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
			var m *record.ValidatorUpdate
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
					m = &record.ValidatorUpdate{PubKey: pk, Power: a.Power, Seq: a.Seq}
				} else if string(m.PubKey) != string(pk) || m.Power != a.Power || m.Seq != a.Seq {
					return fmt.Errorf("%s approves a different change than the others", f)
				}
				m.Approvals = append(m.Approvals, record.Approval{Validator: v, Signature: s})
			}
			return g.send(cmd, &tf, m)
		},
	}
	tf.register(update)

	list := &cobra.Command{
		Use: "list", Short: "List the validators as the ledger records them", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p struct {
				Items []record.Validator `json:"items"`
			}
			if err := g.client().Get(cmd.Context(), "/v1/validators", &p); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), p.Items, func(w io.Writer) {
				for _, v := range p.Items {
					fmt.Fprintf(w, "%s  %s  power %d\n", record.ValidatorAddress(v.PubKey), base64.StdEncoding.EncodeToString(v.PubKey), v.Power)
				}
			})
		},
	}
	c.AddCommand(approve, update, list, validatorShowCmd(g), validatorEvidenceCmd(g))
	return c
}

// validatorView is what `validator show` prints as JSON.
type validatorView struct {
	*record.ValidatorInfo
	Height   int64                   `json:"height"`
	History  []record.ValidatorEvent `json:"history_entries"`
	Evidence []record.Evidence       `json:"evidence_records"`
	Proved   bool                    `json:"proved,omitempty"`
}

func validatorShowCmd(g *globals) *cobra.Command {
	var prove bool
	show := &cobra.Command{
		Use:   "show ADDRESS|PUBKEY",
		Short: "Show a validator, in or out of the set: power, history, evidence of misbehaviour against it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := api.ParseValidatorID(args[0])
			if err != nil {
				return err
			}
			ctx, cl := cmd.Context(), g.client()
			id := fmt.Sprintf("%X", addr)
			var rec struct {
				Height int64                 `json:"height"`
				Record *record.ValidatorInfo `json:"record"`
			}
			v := validatorView{}
			if prove {
				var info record.ValidatorInfo
				p, found, err := cl.ProvedRecord(ctx, "/v1/validators/"+id, &info)
				if err != nil {
					return err
				}
				if !found {
					return fmt.Errorf("the ledger has no validator %s (absence proved at height %d)", id, p.Height)
				}
				if err := checkValidatorProof(ctx, cl, &info, p); err != nil {
					return fmt.Errorf("validator %s: %w", id, err)
				}
				v.ValidatorInfo, v.Height, v.Proved = &info, p.Height, true
			} else {
				if err := cl.Get(ctx, "/v1/validators/"+id, &rec); err != nil {
					return err
				}
				v.ValidatorInfo, v.Height = rec.Record, rec.Height
			}
			h := strconv.FormatInt(v.Height, 10)
			for after := ""; ; {
				var p struct {
					Items []record.ValidatorEvent `json:"items"`
					Next  string                  `json:"next"`
				}
				if err := cl.Get(ctx, "/v1/validators/"+id+"/history?limit=1000&height="+h+"&after="+after, &p); err != nil {
					return err
				}
				v.History = append(v.History, p.Items...)
				if after = p.Next; after == "" {
					break
				}
			}
			for _, e := range v.History {
				if e.Kind != record.ValEventEvidence || e.Evidence == 0 {
					continue
				}
				var r struct {
					Record record.Evidence `json:"record"`
				}
				if err := cl.Get(ctx, "/v1/evidence/"+strconv.FormatUint(e.Evidence, 10)+"?height="+h, &r); err != nil {
					return err
				}
				v.Evidence = append(v.Evidence, r.Record)
			}
			return g.print(cmd.OutOrStdout(), v, func(w io.Writer) {
				status := "in the set"
				if v.Power == 0 {
					status = "not in the set"
				}
				fmt.Fprintf(w, "validator %s (height %d)\n  pub key  %s\n  power    %d (%s)\n", v.Address, v.Height, base64.StdEncoding.EncodeToString(v.PubKey), v.Power, status)
				if v.Removed != 0 {
					fmt.Fprintf(w, "  removed  at height %d for misbehaviour\n", v.Removed)
				}
				fmt.Fprintf(w, "  history  %d entries, %d evidence\n", v.ValidatorInfo.History, v.ValidatorInfo.Evidence)
				for _, e := range v.History {
					fmt.Fprintf(w, "    #%d height %d %s power %d", e.Seq, e.Height, e.Kind, e.Power)
					if len(e.Tx) > 0 {
						fmt.Fprintf(w, " tx %X", e.Tx)
					}
					if e.Evidence != 0 {
						fmt.Fprintf(w, " evidence %d", e.Evidence)
					}
					if e.Note != "" {
						fmt.Fprintf(w, " (%s)", e.Note)
					}
					fmt.Fprintln(w)
				}
				for _, e := range v.Evidence {
					fmt.Fprintf(w, "  evidence %d: %s at height %d (%s), committed at %d, removed %v\n", e.Seq, e.Type, e.Height, e.Time, e.Committed, e.Removed)
				}
				if v.Proved {
					fmt.Fprintf(w, "  proof checked against the header of height %d\n", v.Height+1)
				}
			})
		},
	}
	show.Flags().BoolVar(&prove, "prove", false, "check the record's proof against a header signed by the validators")
	return show
}

// checkValidatorProof checks the record's proof against a header signed by
// the validators, and that the proven record is the one shown.
func checkValidatorProof(ctx context.Context, cl *client.Client, v *record.ValidatorInfo, p *record.Proof) error {
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	if _, err := cl.VerifyProof(ctx, st.ChainID, p); err != nil {
		return err
	}
	var proven record.ValidatorInfo
	if err := record.Unmarshal(p.Value, &proven); err != nil {
		return err
	}
	if !bytes.Equal(proven.Address, v.Address) || proven.Power != v.Power || proven.History != v.History || proven.Evidence != v.Evidence || proven.Removed != v.Removed {
		return fmt.Errorf("the proven record differs from the one shown")
	}
	return nil
}

func validatorEvidenceCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "evidence", Short: "List the evidence of validator misbehaviour committed on the chain", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var all []record.Evidence
			for after := ""; ; {
				var p struct {
					Items []record.Evidence `json:"items"`
					Next  string            `json:"next"`
				}
				if err := g.client().Get(cmd.Context(), "/v1/evidence?limit=1000&after="+after, &p); err != nil {
					return err
				}
				all = append(all, p.Items...)
				if after = p.Next; after == "" {
					break
				}
			}
			return g.print(cmd.OutOrStdout(), all, func(w io.Writer) {
				if len(all) == 0 {
					fmt.Fprintln(w, "no evidence committed")
				}
				for _, e := range all {
					action := "removed"
					if !e.Removed {
						action = "kept: " + e.Note
					}
					fmt.Fprintf(w, "%d  %s  %s at height %d, committed at %d, %s\n", e.Seq, e.Address, e.Type, e.Height, e.Committed, action)
				}
			})
		},
	}
}
