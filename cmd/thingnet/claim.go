package main

import (
	"context"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/identity/pkcs11"
	"github.com/thingnet/thingnet/record"
)

// deviceCode is the device side of onboarding: make (or load) the device's
// key and print its one-time claim code.
func deviceCode(g *globals) *cobra.Command {
	var key, org, chainID, alg string
	var ttl time.Duration
	var qr bool
	c := &cobra.Command{
		Use:   "code",
		Short: "On the device: create its key if needed and print a one-time claim code for an admin to claim",
		Long: `Print a claim code for the device key --key (created in the keystore if it does
not exist yet): the device's did:key, its proof of possession for --org on this
chain, a nonce and an expiry, signed by the key. An admin of the organisation
registers the device with 'thingnet device claim CODE'. The code is made of
QR-code alphanumeric characters; case, spaces and dashes do not matter.`,
		Example: `  thingnet device code --key sensor-7 --org demo
  thingnet device claim TNC1... --key demo-admin --class sensor   # the admin, elsewhere`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key == "" || org == "" {
				return errors.New("--key (the device's key name) and --org (the organisation it joins) are required")
			}
			k, created, err := g.loadOrCreateKey(key, alg)
			if err != nil {
				return err
			}
			if chainID == "" {
				st, err := g.client().Status(cmd.Context())
				if err != nil {
					return fmt.Errorf("%w (or pass --chain-id)", err)
				}
				chainID = st.ChainID
			}
			code, err := device.NewClaimCode(k, chainID, org, time.Now(), ttl)
			if err != nil {
				return err
			}
			out := map[string]any{"device": k.ID(), "org": org, "chain_id": chainID, "code": code, "expires": time.Now().Add(ttl).UTC().Format(time.RFC3339), "created_key": created}
			var drawing string
			if qr {
				if drawing, err = device.ClaimQR(code); err != nil {
					return err
				}
			}
			return g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
				if drawing != "" {
					fmt.Fprintf(w, "%s\n", drawing)
				}
				if created {
					fmt.Fprintf(w, "created key %q\n", key)
				}
				fmt.Fprintf(w, "device:  %s\norg:     %s\nexpires: %s\nclaim code (give it to an admin of %s: thingnet device claim CODE):\n\n%s\n\n", k.ID(), org, out["expires"], org, code)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&key, "key", "", "the device's key name (created if missing)")
	f.BoolVar(&qr, "qr", false, "also draw the code as a QR code in the terminal, for a technician's phone")
	f.StringVar(&org, "org", "", "organisation the device joins")
	f.StringVar(&chainID, "chain-id", "", "chain id (default: asked from --node)")
	f.StringVar(&alg, "alg", "ed25519", "algorithm of a new key: ed25519 or p256")
	f.DurationVar(&ttl, "ttl", 15*time.Minute, "how long the code stays valid")
	return c
}

// loadOrCreateKey loads a key, or creates it (passphrase from
// $THINGNET_PASSPHRASE or a prompt) when it does not exist.
func (g *globals) loadOrCreateKey(name, alg string) (*identity.Key, bool, error) {
	if pkcs11.IsURI(name) {
		k, err := g.loadKey(name)
		return k, false, err
	}
	if _, err := g.ks().Info(name); err == nil {
		k, err := g.loadKey(name)
		return k, false, err
	} else if !errors.Is(err, identity.ErrKeyNotFound) {
		return nil, false, err
	}
	a, err := identity.ParseAlgorithm(alg)
	if err != nil {
		return nil, false, err
	}
	k, err := identity.GenerateKey(a)
	if err != nil {
		return nil, false, err
	}
	pass, err := passphrase("passphrase for the new key (empty: none)", true)
	if err != nil {
		return nil, false, err
	}
	if _, err := g.ks().Save(name, k, pass); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// deviceClaim is the admin side: register the device a claim code names.
func deviceClaim(g *globals) *cobra.Command {
	var tf txFlags
	var org, class, firmware string
	var labels []string
	c := &cobra.Command{
		Use:   "claim CODE",
		Short: "Register the device of a claim code (from 'thingnet device code' on the device) in your organisation",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			claim, err := device.ParseClaimCode(args[0])
			if err != nil {
				return err
			}
			st, err := g.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			if err := claim.Check(st.ChainID, org, time.Now()); err != nil {
				return err
			}
			lb, err := parseLabels(labels)
			if err != nil {
				return err
			}
			admin, err := g.loadKey(tf.key)
			if err != nil {
				return err
			}
			if g.output != "json" {
				fmt.Fprintf(cmd.OutOrStdout(), "claiming %s for organisation %s\n", claim.Device, claim.Org)
			}
			return g.sendWith(cmd, admin, &tf, claim.Register(class, firmware, lb))
		},
	}
	tf.register(c)
	f := c.Flags()
	f.StringVar(&org, "org", "", "your organisation (checked against the one the code was made for)")
	f.StringVar(&class, "class", "", "device class, e.g. sensor, actuator, meter")
	f.StringVar(&firmware, "firmware", "", "firmware version")
	f.StringArrayVar(&labels, "label", nil, "label key=value (repeat)")
	return c
}

// registerCSV registers every device of a CSV file (columns: id or key
// name, class, labels "k=v;k2=v2", pop hex) in org, signed by admin, with
// the SDK's device.RegisterAll: devices already registered are skipped, so
// an interrupted run can be started again; the others go out back to back
// with consecutive nonces, in chunks the node's mempool holds.
func (g *globals) registerCSV(cmd *cobra.Command, admin *identity.Key, org, file string) error {
	ctx := cmd.Context()
	c := g.client()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	rows, failures, err := g.readCSV(file, st.ChainID, org)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "registering the devices of %d rows (%d unreadable)\n", len(rows), len(failures))
	// Bounded: a registration lost from the mempool never commits.
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(len(rows))*100*time.Millisecond)
	defer cancel()
	registered, err := device.RegisterAll(ctx, c, admin, st.ChainID, rows)
	if err != nil {
		return fmt.Errorf("%w; run the command again to resume (registered rows are skipped)", err)
	}
	skipped := len(rows) - registered
	total := len(rows) + len(failures)
	summary := map[string]any{"rows": total, "registered": registered, "already_registered": skipped, "failed": len(failures), "failures": failures}
	err = g.print(cmd.OutOrStdout(), summary, func(w io.Writer) {
		fmt.Fprintf(w, "registered %d, already registered %d, failed %d (of %d rows)\n", registered, skipped, len(failures), total)
		for _, f := range failures {
			fmt.Fprintf(w, "  FAILED %s\n", f)
		}
	})
	if err == nil && len(failures) > 0 {
		err = fmt.Errorf("%d rows failed; fix them and run the command again (registered rows are skipped)", len(failures))
	}
	return err
}

// readCSV reads the rows of a bulk registration file. A first row whose
// first cell is "id" or "key" is a header. Rows that cannot be used are
// returned as failures, not errors.
func (g *globals) readCSV(file, chainID, org string) ([]*record.DeviceRegister, []string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	rd := csv.NewReader(f)
	rd.FieldsPerRecord = -1
	rd.TrimLeadingSpace = true
	rd.Comment = '#'
	var rows []*record.DeviceRegister
	var bad []string
	seen := map[string]bool{}
	for line := 1; ; line++ {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
		if line == 1 && len(rec) > 0 && (strings.EqualFold(rec[0], "id") || strings.EqualFold(rec[0], "key") || strings.EqualFold(rec[0], "id/key")) {
			continue
		}
		for len(rec) < 4 {
			rec = append(rec, "")
		}
		r, err := g.csvRegistration(rec, chainID, org)
		if err != nil {
			bad = append(bad, fmt.Sprintf("line %d: %v", line, err))
			continue
		}
		if seen[r.Device] {
			bad = append(bad, fmt.Sprintf("line %d: %s appears twice", line, r.Device))
			continue
		}
		seen[r.Device] = true
		rows = append(rows, r)
	}
	return rows, bad, nil
}

// csvRegistration makes the registration of one row, checking its proof
// of possession.
func (g *globals) csvRegistration(rec []string, chainID, org string) (*record.DeviceRegister, error) {
	id, class, labels, pop := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1]), strings.TrimSpace(rec[2]), strings.TrimSpace(rec[3])
	m := &record.DeviceRegister{Org: org, Class: class}
	if labels != "" {
		lb, err := parseLabels(strings.Split(labels, ";"))
		if err != nil {
			return nil, err
		}
		m.Labels = lb
	}
	switch {
	case id == "":
		return nil, errors.New("no device id or key name in the first column")
	case strings.HasPrefix(id, "did:"):
		if pop == "" {
			return nil, fmt.Errorf("%s: no proof of possession (fourth column, hex, from 'thingnet device pop')", id)
		}
		p, err := hex.DecodeString(pop)
		if err != nil {
			return nil, fmt.Errorf("%s: proof: %w", id, err)
		}
		m.Device, m.Proof = id, p
	default:
		k, err := g.loadKey(id)
		if err != nil {
			return nil, err
		}
		m.Device = k.ID()
		if m.Proof, err = k.Sign(record.PossessionMessage(chainID, org, m.Device)); err != nil {
			return nil, err
		}
	}
	if err := m.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Device, err)
	}
	pub, err := identity.ParseDID(m.Device)
	if err != nil {
		return nil, err
	}
	if err := pub.Verify(record.PossessionMessage(chainID, org, m.Device), m.Proof); err != nil {
		return nil, fmt.Errorf("%s: the proof of possession is not for organisation %s on chain %s: %v", m.Device, org, chainID, err)
	}
	return m, nil
}
