package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// dataKeyName is the keystore name of version v of org's data key.
func dataKeyName(org string, v uint64) string { return org + ".data." + strconv.FormatUint(v, 10) }

// dataKeyCmd is `thingnet org datakey`: an organisation's data keys, to
// which its devices seal confidential readings (docs/privacy.md).
func dataKeyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "datakey", Short: "An organisation's data keys: devices seal confidential readings to them"}
	var tf txFlags
	var suiteName, name string
	newc := &cobra.Command{
		Use:   "new ORG",
		Short: "Generate a data key, keep its private half in the keystore and publish the public half (a new version)",
		Long: `Generate an HPKE key pair for the organisation, store the private key in the keystore
(encrypted with a passphrase, like any key; name ORG.data.VERSION unless --name) and
publish the public key with an org.datakey tx signed by an admin (--key). Each call
is a new version, the one devices seal to from then on (rotation); older versions
stay on the ledger, and their readings still open with their keys.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			org := args[0]
			suite, err := identity.ParseSuite(suiteName)
			if err != nil {
				return err
			}
			admin, err := g.loadKey(tf.key)
			if err != nil {
				return err
			}
			alg := identity.Ed25519
			if suite == identity.SuiteP256 {
				alg = identity.P256
			}
			dk, err := identity.GenerateKey(alg)
			if err != nil {
				return err
			}
			pub, err := dk.HPKEPublicKey(suite)
			if err != nil {
				return err
			}
			cl := g.client()
			cur, err := cl.DataKey(cmd.Context(), org, 0, false)
			var next uint64 = 1
			switch e := (*client.Error)(nil); {
			case err == nil:
				next = cur.Record.Version + 1
			case errors.As(err, &e) && e.Status == 404:
			default:
				return err
			}
			if name == "" {
				name = dataKeyName(org, next)
			}
			pass, err := passphrase("passphrase for the data key "+name+" (empty: none)", true)
			if err != nil {
				return err
			}
			// Saved before publishing: a key published but lost would seal
			// readings nobody can open.
			info, err := g.ks().Save(name, dk, pass)
			if err != nil {
				return err
			}
			if err := g.sendWith(cmd, admin, &tf, &record.OrgDataKey{Org: org, Suite: uint8(suite), Key: pub}); err != nil {
				return fmt.Errorf("%w (the private key stays in %s)", err, info.Path)
			}
			if tf.noWait {
				return nil
			}
			got, err := cl.DataKey(cmd.Context(), org, next, false)
			if err != nil || got.Record == nil || string(got.Record.Key) != string(pub) {
				return fmt.Errorf("the ledger's %q data key version %d is not the one published (another admin published at the same time?): the private key is in %s; check with `thingnet org datakey show %s`", org, next, info.Path, org)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "data key version %d of %q (%v): private key in the keystore as %q\n", next, org, suite, name)
			return nil
		},
	}
	tf.register(newc)
	newc.Flags().StringVar(&suiteName, "suite", "x25519", "HPKE suite: x25519, p256 or hybrid (ML-KEM-768+X25519, post-quantum)")
	newc.Flags().StringVar(&name, "name", "", "keystore name of the private key (default ORG.data.VERSION)")

	var version uint64
	var prove bool
	show := &cobra.Command{
		Use: "show ORG", Short: "Show the organisation's current data key (or --version)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/orgs/" + args[0] + "/datakey"
			if version != 0 {
				path += "?version=" + strconv.FormatUint(version, 10)
			}
			var k record.DataKey
			if err := g.getRecord(cmd, path, prove, &k); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), k, func(w io.Writer) {
				_, err := g.ks().Info(dataKeyName(k.Org, k.Version))
				held := "not in this keystore"
				if err == nil {
					held = "in this keystore as " + dataKeyName(k.Org, k.Version)
				}
				fmt.Fprintf(w, "org:     %s\nversion: %d\nsuite:   %v\nkey:     %X\nheight:  %d (by %s)\nprivate: %s\n",
					k.Org, k.Version, identity.Suite(k.Suite), k.Key, k.Height, k.Signer, held)
			})
		},
	}
	show.Flags().Uint64Var(&version, "version", 0, "this version instead of the current one")
	show.Flags().BoolVar(&prove, "prove", false, "fetch a proof and check it against the signed header")

	var tfs txFlags
	var shareVersion uint64
	share := &cobra.Command{
		Use:   "share ORG GRANTEE",
		Short: "Let a reader open the organisation's sealed readings: wrap the data keys to its ledger key",
		Long: `Wrap the private data key of every version in the keystore (or --version) to the
grantee's ledger key (HPKE) and publish the wrapped keys (org.datakey.share): the
grantee (a did:key or a keystore name) then opens sealed readings with --decrypt,
old ones included, and no reading is re-encrypted. Reading still needs a read
grant (thingnet grant add) for the gateway to serve the entries.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			org := args[0]
			grantee, err := g.resolveID(args[1])
			if err != nil {
				return err
			}
			admin, err := g.loadKey(tfs.key)
			if err != nil {
				return err
			}
			cl := g.client()
			st, err := cl.Status(cmd.Context())
			if err != nil {
				return err
			}
			versions := []uint64{shareVersion}
			if shareVersion == 0 {
				cur, err := cl.DataKey(cmd.Context(), org, 0, false)
				if err != nil {
					return err
				}
				versions = versions[:0]
				for v := uint64(1); v <= cur.Record.Version; v++ {
					versions = append(versions, v)
				}
			}
			for _, v := range versions {
				dk, err := g.loadDataKey(cmd.Context(), cl, org, v)
				if err != nil {
					return err
				}
				m, err := client.WrapDataKey(st.ChainID, org, v, grantee, dk)
				if err != nil {
					return err
				}
				if err := g.sendWith(cmd, admin, &tfs, m); err != nil {
					return err
				}
			}
			return nil
		},
	}
	tfs.register(share)
	share.Flags().Uint64Var(&shareVersion, "version", 0, "share only this version (default: every version)")
	c.AddCommand(newc, show, share)
	return c
}

// loadDataKey loads version v of org's data key from the keystore and
// checks it against the published key.
func (g *globals) loadDataKey(ctx context.Context, cl *client.Client, org string, v uint64) (*identity.Key, error) {
	name := dataKeyName(org, v)
	if _, err := g.ks().Info(name); err != nil {
		return nil, fmt.Errorf("%w: %q version %d: %v", client.ErrNoDataKey, org, v, err)
	}
	k, err := g.loadKey(name)
	if err != nil {
		return nil, err
	}
	pub, err := cl.DataKey(ctx, org, v, false)
	if err != nil {
		return nil, err
	}
	if err := client.CheckDataKey(k, pub.Record); err != nil {
		return nil, err
	}
	return k, nil
}

// opener opens sealed readings with the data keys of the keystore, or the
// shares for --identity.
func (g *globals) opener(ctx context.Context) (*client.Opener, error) {
	cl := g.client()
	st, err := cl.Status(ctx)
	if err != nil {
		return nil, err
	}
	o := &client.Opener{Client: cl, ChainID: st.ChainID, Lookup: func(org string, v uint64) (*identity.Key, error) {
		name := dataKeyName(org, v)
		if _, err := g.ks().Info(name); err != nil {
			return nil, fmt.Errorf("%w: %v", client.ErrNoDataKey, err)
		}
		return g.loadKey(name)
	}}
	if g.reader != nil && g.reader.Key != nil {
		o.Reader, o.ReaderID = g.reader.Key, g.reader.ID
		if o.ReaderID == "" {
			o.ReaderID = g.reader.Key.ID()
		}
	}
	return o, nil
}

// openEnvelope opens env's sealed readings in place.
func (g *globals) openEnvelope(ctx context.Context, env *reading.Envelope) error {
	o, err := g.opener(ctx)
	if err != nil {
		return err
	}
	for i, r := range env.Readings {
		if r.Sealed == nil {
			continue
		}
		if env.Readings[i], err = o.Open(ctx, r); err != nil {
			return fmt.Errorf("reading %d of %s: %w", r.Seq, r.Device, err)
		}
	}
	return nil
}

// openItems opens the sealed readings of a list: each sealed item's
// envelope is fetched (GET /v1/readings/{index}) and opened.
func (g *globals) openItems(ctx context.Context, items []client.ReadingItem) error {
	var o *client.Opener
	envs := map[uint64]*reading.Envelope{}
	for i, it := range items {
		if it.Sealed != nil { // the gateway sent the sealed value
			if o == nil {
				var err error
				if o, err = g.opener(ctx); err != nil {
					return err
				}
			}
			open, err := o.Open(ctx, reading.Reading{Device: it.Device, Seq: it.Seq, Time: it.Time, ContentType: it.ContentType, Sealed: it.Sealed})
			if err != nil {
				return fmt.Errorf("entry %d, reading %d: %w", it.Index, it.Seq, err)
			}
			items[i].Value, items[i].Bytes, items[i].Sealed = open.Value, open.Bytes, nil
			continue
		}
		if it.Value != nil || len(it.Bytes) > 0 {
			continue // a plaintext reading (an empty one may be sealed: look)
		}
		env, ok := envs[it.Index]
		if !ok {
			p, err := g.client().Reading(ctx, it.Index)
			if err != nil {
				return err
			}
			if p.Withheld != nil {
				return fmt.Errorf("entry %d: withheld (%s): %s", it.Index, p.Withheld.Code, p.Withheld.Message)
			}
			if env, err = reading.Decode(p.Envelope); err != nil {
				return fmt.Errorf("entry %d: %w", it.Index, err)
			}
			envs[it.Index] = env
		}
		for _, r := range env.Readings {
			if r.Seq != it.Seq || r.Sealed == nil {
				continue
			}
			if o == nil {
				var err error
				if o, err = g.opener(ctx); err != nil {
					return err
				}
			}
			open, err := o.Open(ctx, r)
			if err != nil {
				return fmt.Errorf("entry %d, reading %d: %w", it.Index, r.Seq, err)
			}
			items[i].Value, items[i].Bytes = open.Value, open.Bytes
		}
	}
	return nil
}

// valueText is how a reading's value prints.
func valueText(r reading.Reading) string {
	switch {
	case r.Sealed != nil:
		return fmt.Sprintf("sealed (%v, data key version %d; --decrypt opens it)", r.Sealed.Suite, r.Sealed.Version)
	case r.Value != nil:
		return strconv.FormatFloat(*r.Value, 'g', -1, 64)
	}
	return fmt.Sprintf("%d bytes", len(r.Bytes))
}

// openedJSON is what readings get prints as JSON: the proof, and with
// --decrypt the opened readings beside it.
func openedJSON(p *proof.Reading, env *reading.Envelope, decrypted bool) any {
	if !decrypted {
		return p
	}
	items := make([]client.ReadingItem, len(env.Readings))
	for i, r := range env.Readings {
		items[i] = client.ReadingItem{Index: p.Index, Device: env.Device, Seq: r.Seq, Time: r.Time, ContentType: r.ContentType, Value: r.Value, Bytes: r.Bytes}
	}
	return struct {
		*proof.Reading
		Opened []client.ReadingItem `json:"opened"`
	}{p, items}
}

// disclosure is the secret that discloses reading item of a sealed
// envelope to the ledger (record.ReadingEvidence.Secret).
func (g *globals) disclosure(ctx context.Context, envelope []byte, item uint32) ([]byte, error) {
	env, err := reading.Decode(envelope)
	if err != nil {
		return nil, err
	}
	if int(item) >= len(env.Readings) {
		return nil, fmt.Errorf("the envelope holds %d readings; --item %d is not one", len(env.Readings), item)
	}
	o, err := g.opener(ctx)
	if err != nil {
		return nil, err
	}
	return o.Secret(ctx, env.Readings[item])
}
