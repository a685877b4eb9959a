package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/node"
	"github.com/thingnet/thingnet/record"
)

// StoreAlteration is one row of `thingnet verify store`: which store, which
// item (a log entry index, a block height) and what was altered.
type StoreAlteration struct {
	Store  string `json:"store"` // "readings", "blocks" or "ledger"
	Item   string `json:"item"`  // "entry 7", "height 12", "anchor 3"
	What   string `json:"what"`  // payload/signature, missing, extra, app_hash, tx 0, commit_signature 2, ...
	Detail string `json:"detail"`
}

// StoreReport is the answer of `thingnet verify store`.
type StoreReport struct {
	Home        string             `json:"home"`
	Clean       bool               `json:"clean"`
	Blocks      *chain.BlockReport `json:"blocks,omitempty"`
	Readings    *gateway.LogReport `json:"readings,omitempty"`
	Compared    string             `json:"compared_with,omitempty"` // the node whose header the last block was compared with
	Alterations []StoreAlteration  `json:"alterations"`
	Skipped     []string           `json:"skipped,omitempty"`
}

// alteredError makes the command exit with status 3: the check ran and
// found alterations (status 1: it could not run).
type alteredError struct{ n int }

func (e alteredError) Error() string {
	return fmt.Sprintf("the store was altered: %d alteration(s) found", e.n)
}
func (alteredError) ExitCode() int { return 3 }

func verifyStoreCmd(g *globals) *cobra.Command {
	var home, gw, compare string
	c := &cobra.Command{
		Use:   "store --home DIR",
		Short: "Check a stopped node's data directory offline and list exactly what was altered (exit status 3 if anything was)",
		Long: `Reads a node's stores read-only (stop the node first) and reports every alteration:

  readings  the gateway's reading log: each entry against the leaf hash stored when
            it was appended, its signature with the key its device had when the
            gateway authenticated it, missing and extra entries, the tree's subtree
            hashes, and the log's roots against every anchor of the gateway on the
            ledger (the first bad anchor).
  blocks    CometBFT's block store: commit signatures against the validator sets,
            each header against the block ID they signed, the hash chain, data
            hash vs transactions (each altered transaction by index), app hash vs
            the ledger's state history, and the other derivable header fields.

What it trusts: the ledger state and validator sets in the same directory,
which the block check ties to the headers' signatures. An attacker who can
rewrite the whole directory consistently (re-signing with a validator key of
their own) is caught only by --compare, which checks the last block's hash
against another node of the network.`,
		Example: `  thingnet verify store --home ~/.thingnet
  thingnet verify store --home ./devnet/nodes/node1 --gateway did:key:z6Mk... --compare http://10.0.0.2:26657 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if home == "" {
				return errors.New("--home is required: the node's home directory")
			}
			rep, err := verifyStore(cmd, home, gw, compare)
			if err != nil {
				return err
			}
			if err := g.print(cmd.OutOrStdout(), rep, func(w io.Writer) { printStoreReport(w, rep) }); err != nil {
				return err
			}
			if !rep.Clean {
				return alteredError{len(rep.Alterations)}
			}
			return nil
		},
	}
	c.Flags().StringVar(&home, "home", "", "the node's home directory (data/ under it)")
	c.Flags().StringVar(&gw, "gateway", "", "the gateway's device id, if the home has no thingnet.toml naming its key")
	c.Flags().StringVar(&compare, "compare", "", "API URL of another node: the last block's hash must be that node's")
	return c
}

func verifyStore(cmd *cobra.Command, home, gwID, compare string) (*StoreReport, error) {
	rep := &StoreReport{Home: home, Alterations: []StoreAlteration{}}
	data := filepath.Join(home, "data")
	if _, err := os.Stat(filepath.Join(data, "blockstore.db")); err != nil {
		return nil, fmt.Errorf("%s holds no block store (data/blockstore.db): is it a node's home?", home)
	}
	app, err := ledger.NewApp(ledger.Config{Dir: filepath.Join(data, "ledger")})
	if err != nil {
		return nil, fmt.Errorf("opening the ledger state (is the node stopped?): %w", err)
	}
	defer app.Close()
	appHash := func(h int64) ([]byte, error) {
		p, err := app.Prove([]byte("thingnet/verify-store"), h)
		if err != nil {
			return nil, err
		}
		return p.Root, nil
	}
	br, err := chain.CheckBlocks(chain.BlockCheckConfig{DataDir: data, AppHash: appHash})
	if err != nil {
		return nil, err
	}
	rep.Blocks = br
	for _, f := range br.Findings {
		what := f.Field
		if f.Field == "tx" || f.Field == "commit_signature" {
			what = fmt.Sprintf("%s %d", f.Field, f.Index)
		}
		rep.Alterations = append(rep.Alterations, StoreAlteration{Store: "blocks", Item: fmt.Sprintf("height %d", f.Height), What: what, Detail: f.Detail})
	}
	if compare != "" {
		rep.Compared = compare
		h, err := client.New(compare).Header(cmd.Context(), br.Height)
		if err != nil {
			return nil, fmt.Errorf("--compare %s: header %d: %w", compare, br.Height, err)
		}
		if theirs := h.SignedHeader.Hash(); !bytes.Equal(theirs, br.LastBlockHash) {
			rep.Alterations = append(rep.Alterations, StoreAlteration{Store: "blocks", Item: fmt.Sprintf("height %d", br.Height), What: "chain",
				Detail: fmt.Sprintf("the last block hashes to %X here, %X at %s: this store is not that network's chain", br.LastBlockHash, []byte(theirs), compare)})
		}
	}

	gwDir := ""
	for _, d := range []string{filepath.Join(data, "gateway"), filepath.Join(home, "gateway")} {
		if _, err := os.Stat(filepath.Join(d, "datalog")); err == nil {
			gwDir = d
			break
		}
	}
	if gwDir == "" {
		rep.Skipped = append(rep.Skipped, "readings: this node runs no gateway (no data/gateway/datalog)")
	} else {
		if gwID == "" {
			if gwID, err = gatewayIDOf(home); err != nil {
				return nil, fmt.Errorf("which gateway's log is %s? %w (or pass --gateway DID)", gwDir, err)
			}
		}
		// The anchors are read from the state whose hash the last
		// confirmed header carries, and each is proved against it: the
		// ledger's own store is trusted no further than the signatures.
		at := br.AppHashOf
		if br.AppHash == nil || at > app.Height() {
			at = 0
			rep.Skipped = append(rep.Skipped, "anchor records: no header confirmed by the validators' signatures carries the ledger state's hash; they are read unproved")
		}
		st, err := app.View(at)
		if err != nil {
			return nil, fmt.Errorf("reading the ledger state at height %d: %w", at, err)
		}
		lr, err := gateway.CheckLog(gwDir, gwID, st)
		if err != nil {
			return nil, err
		}
		rep.Readings = lr
		for _, a := range lr.AnchorList {
			if at == 0 {
				break
			}
			p, err := app.Prove(record.AnchorAtKey(gwID, a.Size), at)
			if err == nil {
				err = record.VerifyProof(br.AppHash, p.Key, p.Value, p.Proof)
			}
			if err != nil {
				rep.Alterations = append(rep.Alterations, StoreAlteration{Store: "ledger", Item: fmt.Sprintf("anchor record of size %d", a.Size), What: "anchor_record",
					Detail: fmt.Sprintf("the ledger's record of the anchor of size %d does not prove against the app hash %X that the validators signed for height %d: %v", a.Size, br.AppHash, at, err)})
			}
		}
		for _, f := range lr.Findings {
			item := fmt.Sprintf("entry %d", f.Index)
			what := f.What
			switch f.What {
			case "node":
				item = fmt.Sprintf("subtree %d@%d", f.Index, f.Level)
			case gateway.FindAnchor:
				item = fmt.Sprintf("anchor at height %d", lr.FirstBadAnchor.Height)
			case gateway.FindSignature:
				what = "payload/signature"
			}
			rep.Alterations = append(rep.Alterations, StoreAlteration{Store: "readings", Item: item, What: what, Detail: f.Detail})
		}
	}
	rep.Clean = len(rep.Alterations) == 0
	return rep, nil
}

// gatewayIDOf reads a node home's thingnet.toml for the gateway key and
// returns its id (from the keystore, without decrypting the key).
func gatewayIDOf(home string) (string, error) {
	c, err := node.LoadConfig(home)
	if err != nil {
		return "", err
	}
	if strings.ContainsRune(c.Gateway.Key, os.PathSeparator) {
		k, err := identity.LoadKeyFile(c.Gateway.Key, []byte(os.Getenv("THINGNET_GATEWAY_PASSPHRASE")))
		if err != nil {
			return "", err
		}
		return k.ID(), nil
	}
	ks := c.Gateway.Keystore
	if ks == "" {
		ks = filepath.Join(home, "keys")
	}
	info, err := identity.Keystore{Dir: ks}.Info(c.Gateway.Key)
	if err != nil {
		return "", fmt.Errorf("the gateway key %q: %w", c.Gateway.Key, err)
	}
	return info.ID, nil
}

func printStoreReport(w io.Writer, r *StoreReport) {
	if b := r.Blocks; b != nil {
		fmt.Fprintf(w, "blocks:   %s, heights %d..%d, app hash checked against the ledger at %d heights\n", b.ChainID, b.Base, b.Height, b.AppHashesMet)
	}
	if l := r.Readings; l != nil {
		fmt.Fprintf(w, "readings: gateway %s, %d entries, %d anchors up to size %d\n", l.Gateway, l.Size, l.Anchors, l.Anchored)
		if a := l.FirstBadAnchor; a != nil {
			fmt.Fprintf(w, "          first bad anchor: size %d at height %d\n", a.Size, a.Height)
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped:  %s\n", s)
	}
	if r.Compared != "" {
		fmt.Fprintf(w, "compared: the last block with %s\n", r.Compared)
	}
	if r.Clean {
		fmt.Fprintln(w, "clean: nothing altered")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tITEM\tALTERED\tDETAIL")
	for _, a := range r.Alterations {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Store, a.Item, a.What, a.Detail)
	}
	tw.Flush()
}
