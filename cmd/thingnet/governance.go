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
	"github.com/thingnet/thingnet/record"
)

// orgApproval is what `org approve` prints and `org create --approval` reads.
type orgApproval struct {
	ChainID   string `json:"chain_id"`
	Org       string `json:"org"`
	Creator   string `json:"creator"`   // did:key of the key that will sign org.create
	Validator string `json:"validator"` // base64 consensus key of the approving validator
	Signature string `json:"signature"` // base64
}

func orgApproveCmd() *cobra.Command {
	var home, chainID, org, creator string
	c := &cobra.Command{
		Use:   "approve --org ID --creator DID",
		Short: "Sign, with this validator's consensus key, an approval for CREATOR to create organisation ID (prints JSON for `org create --approval`)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if org == "" || creator == "" || chainID == "" {
				return fmt.Errorf("--org, --creator (the did:key that will sign org.create) and --chain-id are required")
			}
			if err := (&record.OrgCreate{ID: org}).ValidateBasic(); err != nil {
				return err
			}
			pub, sig, err := chain.SignWithValidatorKey(home, record.OrgCreateMessage(chainID, org, creator))
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(orgApproval{ChainID: chainID, Org: org, Creator: creator,
				Validator: base64.StdEncoding.EncodeToString(pub), Signature: base64.StdEncoding.EncodeToString(sig)})
		},
	}
	f := c.Flags()
	f.StringVar(&home, "home", filepath.Join(defaultHome(), "node"), "home of the approving validator node")
	f.StringVar(&chainID, "chain-id", "", "chain id")
	f.StringVar(&org, "org", "", "id of the organisation to create")
	f.StringVar(&creator, "creator", "", "did:key that will sign org.create and become its first admin")
	return c
}

// readOrgApprovals reads `org approve` files for the creation of org by creator.
func readOrgApprovals(files []string, org, creator string) ([]record.Approval, error) {
	_, as, err := readApprovals(files, func(file string, a *orgApproval) error {
		if a.Org != org || a.Creator != creator {
			return fmt.Errorf("%s approves %s creating %q; this is %s creating %q", file, a.Creator, a.Org, creator, org)
		}
		return nil
	}, func(a *orgApproval) (string, string) { return a.Validator, a.Signature })
	return as, err
}

// readApprovals reads validator approval files, as an `approve` command
// prints them, into T: check refuses one that approves something else
// than wanted (or than the first file), sig returns its base64 validator
// key and signature. It returns the first file's T and the approvals.
func readApprovals[T any](files []string, check func(file string, a *T) error, sig func(*T) (string, string)) (*T, []record.Approval, error) {
	var first *T
	var out []record.Approval
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, err
		}
		a := new(T)
		if err := json.Unmarshal(b, a); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
		if err := check(file, a); err != nil {
			return nil, nil, err
		}
		vb, sb := sig(a)
		v, err1 := base64.StdEncoding.DecodeString(vb)
		s, err2 := base64.StdEncoding.DecodeString(sb)
		if err1 != nil || err2 != nil {
			return nil, nil, fmt.Errorf("%s: bad base64 field", file)
		}
		if first == nil {
			first = a
		}
		out = append(out, record.Approval{Validator: v, Signature: s})
	}
	if first == nil {
		return nil, nil, fmt.Errorf("no approval files")
	}
	return first, out, nil
}

func orgRotateCmd(g *globals) *cobra.Command {
	var tf txFlags
	var newKey string
	c := &cobra.Command{
		Use:   "rotate ORG --new-key NAME",
		Short: "Replace the signing admin key by a new one in one step (the new key proves possession)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if newKey == "" {
				return fmt.Errorf("--new-key is required: the keystore name (or file, or pkcs11: URI) of the new admin key")
			}
			nk, err := g.loadKey(newKey)
			if err != nil {
				return err
			}
			st, err := g.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			proof, err := nk.Sign(record.AdminKeyMessage(st.ChainID, args[0], nk.ID()))
			if err != nil {
				return err
			}
			return g.send(cmd, &tf, &record.OrgAdminRotate{Org: args[0], New: nk.ID(), Proof: proof})
		},
	}
	tf.register(c)
	c.Flags().StringVar(&newKey, "new-key", "", "keystore name, file or pkcs11: URI of the new admin key")
	return c
}

func governanceCmd(g *globals) *cobra.Command {
	var prove bool
	c := &cobra.Command{
		Use:   "governance",
		Short: "Show who may create organisations and each organisation's share of the mempool, blocks and height triggers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var gov record.Governance
			if err := g.getRecord(cmd, "/v1/governance", prove, &gov); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), &gov, func(w io.Writer) {
				fmt.Fprintf(w, "organisation creation: %s", gov.OrgCreation)
				if gov.OrgCreation == record.OrgCreationDeposit {
					fmt.Fprintf(w, " (deposit of %d credits)", gov.OrgDeposit)
				}
				fmt.Fprintln(w)
				for _, b := range []struct {
					name string
					v    int
				}{{"txs per block", gov.BlockTxs}, {"txs in a mempool", gov.MempoolTxs}, {"height triggers per block", gov.BlockTriggers}} {
					v := "unlimited"
					if b.v > 0 {
						v = fmt.Sprint(b.v)
					}
					fmt.Fprintf(w, "per organisation, %s: %s\n", b.name, v)
				}
			})
		},
	}
	c.Flags().BoolVar(&prove, "prove", false, "check the record's proof against the validators' signed header")
	return c
}
