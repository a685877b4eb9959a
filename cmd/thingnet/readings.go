package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

func deviceToken(g *globals) *cobra.Command {
	c := tokenCmd(g)
	c.Short = "Print a token for the device: its MQTT password, its HTTP bearer token (same as `thingnet token`)"
	return c
}

// tokenCmd prints a token: the one credential a caller presents over HTTP
// ("Authorization: Bearer <token>"), to the explorer, and, for a device,
// as its MQTT password.
func tokenCmd(g *globals) *cobra.Command {
	var key, as, chainID string
	var lifetime time.Duration
	c := &cobra.Command{
		Use:   "token",
		Short: "Print a short-lived token that says who you are: for HTTP reads, the explorer, and a device's MQTT password",
		Example: `  curl -H "Authorization: Bearer $(thingnet token --key admin)" http://127.0.0.1:26602/v1/readings?device=DID
  mosquitto_pub -h gw -p 1883 -q 1 -u DEVICE_DID -P "$(thingnet token --key sensor-1)" \
    -t things/DEVICE_DID/readings -f reading.cbor`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key == "" {
				key = g.identity
			}
			k, err := g.loadKey(key)
			if err != nil {
				return err
			}
			if as == "" {
				as = k.ID()
			}
			if chainID == "" {
				st, err := client.New(g.node).Status(cmd.Context())
				if err != nil {
					return fmt.Errorf("%w (or pass --chain-id)", err)
				}
				chainID = st.ChainID
			}
			tok, err := identity.NewCWT(k, as, chainID, time.Now(), lifetime)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), identity.EncodeCWTPassword(tok))
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", envOr("THINGNET_KEY", ""), "the key that signs the token: a device's, an admin's, a grantee's (default --identity)")
	c.Flags().StringVar(&as, "as", "", "the id to sign as, if not the key's did:key (a device whose key was rotated in)")
	c.Flags().StringVar(&chainID, "chain-id", "", "chain id (default: asked from --node)")
	c.Flags().DurationVar(&lifetime, "lifetime", time.Hour, "how long the token is valid (at most 24h): a bearer token, keep it short")
	return c
}

func readingsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "readings", Short: "Send signed readings to a gateway, and fetch and verify stored ones"}
	var key, as, ctype, out string
	var seq uint64
	var value float64
	send := &cobra.Command{
		Use:   "send",
		Short: "Sign a reading with a device key and send it to the node's gateway (POST /v1/readings)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := g.loadKey(key)
			if err != nil {
				return err
			}
			if as == "" {
				as = k.ID()
			}
			if seq == 0 {
				return errors.New("--seq is required: the device's next sequence number (above every one it sent)")
			}
			raw, err := reading.Sign(k, as, reading.Reading{Seq: seq, Time: time.Now(), ContentType: ctype, Value: &value})
			if err != nil {
				return err
			}
			if out != "" {
				return writeFile(out, raw)
			}
			return g.postReading(cmd, raw)
		},
	}
	f := send.Flags()
	f.StringVar(&key, "key", "", "the device's key")
	f.StringVar(&as, "as", "", "device id, if the key was rotated in")
	f.Uint64Var(&seq, "seq", 0, "sequence number")
	f.StringVar(&ctype, "type", "value", "content type, e.g. temperature/celsius")
	f.Float64Var(&value, "value", 0, "the value")
	f.StringVar(&out, "out", "", "write the signed envelope to this file instead of sending it (e.g. for mosquitto_pub -f)")

	var decrypt, decryptList bool
	get := &cobra.Command{
		Use: "get INDEX", Short: "Show a stored reading of the node's gateway, with its proof", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.readingProof(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if p.Withheld != nil {
				return g.print(cmd.OutOrStdout(), p, func(w io.Writer) {
					fmt.Fprintf(w, "value:   withheld (%s): %s\nentry:   hash %X\n", p.Withheld.Code, p.Withheld.Message, p.EntryHash)
					if err := p.Err(); err != nil {
						fmt.Fprintf(w, "log:     entry %d of gateway %s\nproof:   none: %v\n", p.Index, p.Gateway, err)
						return
					}
					fmt.Fprintf(w, "log:     entry %d of gateway %s\nanchor:  log size %d, root %X, height %d\n", p.Index, p.Gateway, p.Anchor.Size, p.Anchor.Root, p.Anchor.Height)
				})
			}
			env, err := reading.Decode(p.Envelope)
			if err != nil {
				return err
			}
			if decrypt { // datakey.go
				if err := g.openEnvelope(cmd.Context(), env); err != nil {
					return err
				}
			}
			return g.print(cmd.OutOrStdout(), openedJSON(p, env, decrypt), func(w io.Writer) {
				printEnvelope(w, env)
				if p.ReceivedAt != 0 {
					late := ""
					if p.Late {
						late = " (late: dated long before)"
					}
					fmt.Fprintf(w, "received: %s by the gateway's clock%s\n", time.UnixMilli(p.ReceivedAt).UTC().Format(time.RFC3339Nano), late)
				}
				if err := p.Err(); err != nil {
					fmt.Fprintf(w, "log:     entry %d of gateway %s\nproof:   none: %v\n", p.Index, p.Gateway, err)
					return
				}
				fmt.Fprintf(w, "log:     entry %d of gateway %s\nanchor:  log size %d, root %X, height %d\n", p.Index, p.Gateway, p.Anchor.Size, p.Anchor.Root, p.Anchor.Height)
			})
		},
	}
	get.Flags().BoolVar(&decrypt, "decrypt", false, "open a sealed reading with the organisation's data key (keystore ORG.data.VERSION, or the share for --identity)")
	var via, trust string
	verify := &cobra.Command{
		Use:   "verify INDEX",
		Short: "Check a stored reading end to end: signature, device active, inclusion in the log, anchor on the ledger",
		Long: `Fetch a reading's proof from --node and check it, trusting only headers signed by
the validators: with --via, the headers and records are checked through another
node, so the gateway that stored the reading is not trusted at all.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.readingProof(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			headers := g.client()
			if via != "" {
				headers = client.New(via)
			}
			st, err := headers.Status(cmd.Context())
			if err != nil {
				return err
			}
			var check proof.Checker = client.Checker{Client: headers, ChainID: st.ChainID}
			if trust != "" {
				opts, err := parseTrust(trust)
				if err != nil {
					return err
				}
				lc, err := lightclient.New(cmd.Context(), st.ChainID, opts, lightclient.APISource(headers))
				if err != nil {
					return fmt.Errorf("light client from --trust %s: %w", trust, err)
				}
				check = lightChecker{lc}
			}
			if p.Withheld != nil {
				an, err := proof.VerifyAnchored(cmd.Context(), check, p)
				if err != nil {
					return fmt.Errorf("VERIFICATION FAILED: %w", err)
				}
				return fmt.Errorf("VERIFICATION INCOMPLETE: the value is withheld (%s: %s); checked only that entry %d (hash %X) is in gateway %s's log, anchored at height %d (header %d); read as someone who may read it (--identity KEY) to check its signature",
					p.Withheld.Code, p.Withheld.Message, p.Index, an.EntryHash, p.Gateway, an.AnchorHeight, an.HeaderHeight)
			}
			v, err := proof.VerifyReading(cmd.Context(), check, p)
			if err != nil {
				return fmt.Errorf("VERIFICATION FAILED: %w", err)
			}
			return g.print(cmd.OutOrStdout(), map[string]any{"verified": true, "index": p.Index, "gateway": p.Gateway, "auth_height": v.AuthHeight, "anchor_height": v.AnchorHeight, "header": v.HeaderHeight}, func(w io.Writer) {
				printEnvelope(w, v.Envelope)
				fmt.Fprintf(w, "verified: signed by the device's key, device active at height %d (when the gateway authenticated it), entry %d of gateway %s's log, anchored at height %d (header %d signed by the validators)\n",
					v.AuthHeight, p.Index, p.Gateway, v.AnchorHeight, v.HeaderHeight)
			})
		},
	}
	verify.Flags().StringVar(&via, "via", "", "check headers and ledger records through this node's API instead of --node")
	verify.Flags().StringVar(&trust, "trust", "", "HEIGHT:HASH of a header you trust (e.g. from the network's operators): verify with a light client from it, trusting no node's validator set")
	var dev, from, to string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List a device's readings stored by the node's gateway, by time", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := g.resolveID(dev)
			if err != nil {
				return err
			}
			q := url.Values{"device": {id}, "limit": {strconv.Itoa(limit)}}
			if from != "" {
				q.Set("from", from)
			}
			if to != "" {
				q.Set("to", to)
			}
			var page struct {
				Items []client.ReadingItem `json:"items"`
			}
			if err := g.client().Get(cmd.Context(), "/v1/readings?"+q.Encode(), &page); err != nil {
				return err
			}
			if decryptList { // datakey.go
				if err := g.openItems(cmd.Context(), page.Items); err != nil {
					return err
				}
			}
			return g.print(cmd.OutOrStdout(), page.Items, func(w io.Writer) {
				for _, r := range page.Items {
					val := fmt.Sprintf("%d bytes", len(r.Bytes))
					if r.Value != nil {
						val = strconv.FormatFloat(*r.Value, 'g', -1, 64)
					}
					fmt.Fprintf(w, "entry %-6d seq %-6d %s  %s %s\n", r.Index, r.Seq, r.Time.UTC().Format(time.RFC3339Nano), val, r.ContentType)
				}
			})
		},
	}
	lf := list.Flags()
	lf.StringVar(&dev, "device", "", "device id or keystore name")
	lf.StringVar(&from, "from", "", "from this time (RFC 3339 or Unix ms)")
	lf.StringVar(&to, "to", "", "until this time (exclusive)")
	lf.IntVar(&limit, "limit", 100, "at most this many readings (1..1000)")
	lf.BoolVar(&decryptList, "decrypt", false, "open sealed readings with the organisation's data key (as readings get --decrypt)")
	c.AddCommand(send, get, verify, list, readingsQueryCmd(g))
	return c
}

// verifyCmd is `thingnet verify reading INDEX` (the same as `readings
// verify`) and `thingnet verify store` (a node's stores, offline).
func verifyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "verify", Short: "Check data end to end against the ledger, or a node's stores for tampering"}
	for _, sub := range readingsCmd(g).Commands() {
		if sub.Name() == "verify" {
			sub.Use = "reading INDEX"
			c.AddCommand(sub)
		}
	}
	c.AddCommand(verifyStoreCmd(g))
	return c
}

func (g *globals) readingProof(ctx context.Context, index string) (*proof.Reading, error) {
	i, err := strconv.ParseUint(index, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("reading index %q must be a number (POST /v1/readings answers it)", index)
	}
	return g.client().Reading(ctx, i)
}

func (g *globals) postReading(cmd *cobra.Command, raw []byte) error {
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, g.client().BaseURL+"/v1/readings", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/cose")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the gateway at %s: %w", g.node, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		var e client.ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("reading refused: %s: %s", e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("reading refused: HTTP %d: %s", resp.StatusCode, body)
	}
	var ok struct {
		Gateway string `json:"gateway"`
		Index   uint64 `json:"index"`
	}
	json.Unmarshal(body, &ok)
	return g.print(cmd.OutOrStdout(), ok, func(w io.Writer) {
		fmt.Fprintf(w, "stored as entry %d of gateway %s\n", ok.Index, ok.Gateway)
	})
}

func printEnvelope(w io.Writer, env *reading.Envelope) {
	fmt.Fprintf(w, "device:  %s\n", env.Device)
	if env.Attester != "" {
		fmt.Fprintf(w, "attested by gateway %s\n", env.Attester)
	}
	for _, r := range env.Readings {
		val := valueText(r)
		fmt.Fprintf(w, "reading: seq %d at %s: %s %s\n", r.Seq, r.Time.UTC().Format(time.RFC3339Nano), val, r.ContentType)
	}
}

// lightChecker checks proofs with a light client.
type lightChecker struct{ lc *lightclient.Client }

func (l lightChecker) CheckProof(ctx context.Context, p *record.Proof) (int64, error) {
	return p.Height + 1, l.lc.VerifyProof(ctx, p)
}

// parseTrust reads HEIGHT:HASH (hex) for a light client.
func parseTrust(s string) (lightclient.TrustOptions, error) {
	o, err := lightclient.ParseTrust(s)
	if err != nil {
		return o, fmt.Errorf("--%w", err)
	}
	return o, nil
}
