package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/audit"
	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/node"
)

// alteredError makes the command exit with status 3: the check ran and
// found alterations (status 1: it could not run).
type alteredError struct{ n int }

func (e alteredError) Error() string {
	return fmt.Sprintf("the store was altered: %d alteration(s) found", e.n)
}
func (alteredError) ExitCode() int { return 3 }

func verifyStoreCmd(g *globals) *cobra.Command {
	var home, gw, compare, segments string
	c := &cobra.Command{
		Use:   "store --home DIR",
		Short: "Check a stopped node's data directory offline and list exactly what was altered (exit status 3 if anything was)",
		Long: `Reads a node's stores read-only (stop the node first) and reports every alteration:

  readings  the gateway's reading log: each entry against the leaf hash stored when
            it was appended, its signature with the key its device had when the
            gateway authenticated it, missing and extra entries, the tree's subtree
            hashes, and the log's roots against every anchor of the gateway on the
            ledger (the first bad anchor). Archived ranges (entries dropped once
            their segment was published and pinned) must match a log.archive
            record; with --segments their segments are fetched and checked
            (digest; opened with the home's gateway key: leaf hashes and
            signatures), and a lost one is reported.
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
			var fetch gateway.SegmentFetch
			var key *identity.Key
			if segments != "" {
				fetch = (&files.Client{Base: segments}).Fetch
				key, _ = gatewayKeyOf(home) // nil: the segments' digests only
			}
			rep, err := audit.Store(cmd.Context(), audit.Config{Home: home, Gateway: gw, Compare: compare, Segments: fetch, GatewayKey: key, GatewayID: func() (string, error) {
				id, err := gatewayIDOf(home)
				if err != nil {
					return "", fmt.Errorf("%w (or pass --gateway DID)", err)
				}
				return id, nil
			}})
			if err != nil {
				return err
			}
			if err := g.print(cmd.OutOrStdout(), rep, rep.WriteText); err != nil {
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
	c.Flags().StringVar(&segments, "segments", "", "API URL of a node to fetch archived log segments from (GET /v1/content/{cid}); each is checked against the ledger and the log")
	return c
}

// gatewayKeyOf loads the gateway key a node home's thingnet.toml names
// (a key file or a keystore name; passphrase $THINGNET_GATEWAY_PASSPHRASE).
func gatewayKeyOf(home string) (*identity.Key, error) {
	c, err := node.LoadConfig(home)
	if err != nil {
		return nil, err
	}
	pass := []byte(os.Getenv("THINGNET_GATEWAY_PASSPHRASE"))
	if strings.ContainsRune(c.Gateway.Key, os.PathSeparator) {
		return identity.LoadKeyFile(c.Gateway.Key, pass)
	}
	ks := c.Gateway.Keystore
	if ks == "" {
		ks = filepath.Join(home, "keys")
	}
	return identity.Keystore{Dir: ks}.Load(c.Gateway.Key, pass)
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
