package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/spf13/cobra"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/mesh/message"
	"github.com/thingnet/thingnet/record"
)

func msgCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "msg",
		Short: "Device-to-device messages: send, listen on the mesh, read a sleeping device's mailbox",
		Long: `Messages are signed by the sending device, delivered only if the ledger says the
sender is active and holds a "message" (or "command") grant for the receiver, and
only once. --seal encrypts the body to the receiver (HPKE), so a gateway keeping
it in a mailbox cannot read it.`,
	}
	c.AddCommand(msgSend(g), msgInbox(g), msgListen(g), msgAnchor(g))
	return c
}

// msgSender holds what every msg command needs: the key, the device id it
// signs for and the node's view of the ledger.
type msgSender struct {
	key  *identity.Key
	id   string
	auth *mesh.APIAuthority
}

func (g *globals) msgSender(ctx context.Context, keyName, as string) (*msgSender, error) {
	k, err := g.loadKey(keyName)
	if err != nil {
		return nil, err
	}
	if as == "" {
		as = k.ID()
	}
	auth, err := mesh.NewAPIAuthority(ctx, g.client())
	if err != nil {
		return nil, err
	}
	return &msgSender{key: k, id: as, auth: auth}, nil
}

func msgSend(g *globals) *cobra.Command {
	var key, as, to, kind, ctype, file, direct string
	var seal, wake, hybrid bool
	c := &cobra.Command{
		Use:   "send [TEXT]",
		Short: "Send a signed message to a device: into its mailbox at the node's gateway, or directly over the mesh",
		Example: `  thingnet msg send --key sensor-1 --to did:key:z6Mk... --seal "valve 3 open"
  thingnet msg send --key sensor-1 --to did:key:z6Mk... --kind command --wake "open now"
  thingnet msg send --key sensor-1 --to did:key:z6Mk... --direct /ip4/192.168.1.20/tcp/4001/p2p/12D3KooW... "hello"`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return errors.New("--to DEVICE is required")
			}
			p, err := g.resolvePrincipal("device:" + to) // a key name in the keystore works too
			if err != nil {
				return err
			}
			to = strings.TrimPrefix(p, "device:")
			var body []byte
			switch {
			case file != "" && len(args) > 0:
				return errors.New("give the text or --file, not both")
			case file != "":
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				body = b
			case len(args) == 1:
				body = []byte(args[0])
			default:
				return errors.New("nothing to send: give the text or --file")
			}
			ctx := cmd.Context()
			s, err := g.msgSender(ctx, key, as)
			if err != nil {
				return err
			}
			o := message.Outgoing{To: to, Kind: kind, Type: ctype, Body: body, Seal: seal || hybrid, Wake: wake}
			if hybrid {
				return errors.New("--hybrid needs the receiver's announced ML-KEM key, which the mesh fetches from the receiver: use the device SDK")
			}
			env, err := message.Compose(s.key, s.id, message.TimeSeq(time.Now()), o, s.auth)
			if err != nil {
				return err
			}
			var res *message.Result
			var by string
			if direct != "" {
				res, err = sendDirect(ctx, s, direct, env)
				by = to
			} else {
				var dr *message.DepositResponse
				dr, err = message.MailboxClient{Base: g.node}.Deposit(ctx, env)
				if dr != nil {
					res, by = &dr.Result, "the gateway's mailbox for "+to
				}
			}
			if err != nil {
				return err
			}
			out := map[string]any{"hash": fmt.Sprintf("%x", res.Hash), "status": res.Status.String(), "reason": res.Reason, "by": by}
			if err := g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
				if res.Status == message.StatusDelivered {
					fmt.Fprintf(w, "delivered to %s (message %x)\n", by, res.Hash)
				}
			}); err != nil {
				return err
			}
			return res.Err()
		},
	}
	f := c.Flags()
	f.StringVar(&key, "key", "", "the sending device's key")
	f.StringVar(&as, "as", "", "the sending device's id, if its key was rotated in")
	f.StringVar(&to, "to", "", "the receiving device's id (or its key's name in the keystore)")
	f.StringVar(&kind, "kind", message.KindMessage, "message or command (the grant the sender needs)")
	f.StringVar(&ctype, "type", "text/plain", "content type of the body")
	f.StringVar(&file, "file", "", "send this file's bytes")
	f.BoolVar(&seal, "seal", false, "encrypt the body to the receiver (HPKE)")
	f.BoolVar(&hybrid, "hybrid", false, "seal with ML-KEM-768+X25519 (post-quantum)")
	f.BoolVar(&wake, "wake", false, "ask the mailbox to wake the sleeping receiver (within its daily budget)")
	f.StringVar(&direct, "direct", "", "send directly to this mesh address of the receiver (multiaddr with /p2p/) instead of its mailbox")
	return c
}

// sendDirect starts a short-lived mesh node with the sender's key and
// sends one message to addr.
func sendDirect(ctx context.Context, s *msgSender, addr string, env []byte) (*message.Result, error) {
	n, err := mesh.New(mesh.Config{Key: s.key, ID: s.id, Authority: s.auth, Listen: []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}, NoPubSub: true})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := n.Connect(ctx, addr); err != nil {
		return nil, err
	}
	return n.Send(ctx, env)
}

func msgInbox(g *globals) *cobra.Command {
	var key, as string
	var keep bool
	c := &cobra.Command{
		Use:   "inbox",
		Short: "Read a device's mailbox at the node's gateway: check, open and print each message, then delete them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := g.msgSender(ctx, key, as)
			if err != nil {
				return err
			}
			tok, err := identity.NewCWT(s.key, s.id, s.auth.ChainID(), time.Now(), 5*time.Minute)
			if err != nil {
				return err
			}
			mc := message.MailboxClient{Base: g.node}
			held, err := mc.Held(ctx, s.id, tok, 64)
			if err != nil {
				return err
			}
			// Each message once in this read: the CLI keeps no replay state
			// between runs (read messages are deleted).
			guard := message.NewReplayGuard(nil)
			type shown struct {
				Seq    uint64 `json:"seq"`
				From   string `json:"from"`
				Kind   string `json:"kind"`
				Type   string `json:"type,omitempty"`
				Sealed bool   `json:"sealed"`
				Body   string `json:"body,omitempty"`
				Error  string `json:"error,omitempty"`
			}
			var out []shown
			var last uint64
			for _, m := range held.Messages {
				last = m.Seq
				sh := shown{Seq: m.Seq}
				env, pt, err := message.CheckHeld(s.auth, guard, s.key, s.id, m.Envelope)
				if env != nil {
					sh.From, sh.Kind, sh.Type, sh.Sealed = env.From, env.Kind, env.Type, env.Suite != 0
				}
				if err != nil {
					sh.Error = err.Error()
				} else {
					sh.Body = string(pt)
				}
				out = append(out, sh)
			}
			if !keep && last > 0 {
				if _, err := mc.Ack(ctx, s.id, tok, last); err != nil {
					return fmt.Errorf("read, but not deleted from the mailbox: %w", err)
				}
			}
			return g.print(cmd.OutOrStdout(), out, func(w io.Writer) {
				if len(out) == 0 {
					fmt.Fprintln(w, "no messages")
				}
				for _, m := range out {
					if m.Error != "" {
						fmt.Fprintf(w, "#%d from %s: REFUSED: %s\n", m.Seq, m.From, m.Error)
						continue
					}
					fmt.Fprintf(w, "#%d %s from %s: %s\n", m.Seq, m.Kind, m.From, m.Body)
				}
				if held.More {
					fmt.Fprintln(w, "(more waiting: run again)")
				}
			})
		},
	}
	c.Flags().StringVar(&key, "key", "", "the device's key")
	c.Flags().StringVar(&as, "as", "", "the device's id, if its key was rotated in")
	c.Flags().BoolVar(&keep, "keep", false, "leave the messages in the mailbox")
	return c
}

func msgListen(g *globals) *cobra.Command {
	var key, as string
	var listen, topics []string
	var mdns bool
	c := &cobra.Command{
		Use:   "listen",
		Short: "Run the device on the mesh and print the messages it receives (until interrupted)",
		Long: `Starts a mesh node with the device's key, joins the node's gateway (and reserves a
relay slot there, so that devices that cannot reach this one directly can through
the gateway), subscribes to --topic, and prints each message delivered: direct,
relayed or on a topic. It trusts the node's API for ledger answers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			s, err := g.msgSender(ctx, key, as)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			handler := func(_ context.Context, d *mesh.Delivery) error {
				rec := map[string]any{"from": d.From, "kind": d.Kind, "via": d.Via, "seq": d.Seq, "topic": d.Topic, "type": d.Type, "body": string(d.Plaintext)}
				if g.output == "json" {
					return json.NewEncoder(w).Encode(rec)
				}
				where := d.Via
				if d.Topic != "" {
					where = "topic " + d.Topic
				}
				_, err := fmt.Fprintf(w, "%s %s from %s (%s): %s\n", time.Now().Format("15:04:05"), d.Kind, d.From, where, d.Plaintext)
				return err
			}
			n, err := mesh.New(mesh.Config{Key: s.key, ID: s.id, Authority: s.auth, Listen: listen, MDNS: mdns, Handler: handler})
			if err != nil {
				return err
			}
			defer n.Close()
			var info message.MeshInfo
			if err := g.client().Get(ctx, "/v1/mesh", &info); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "no gateway mesh at %s (%v): listening on the local network only\n", g.node, err)
			} else if len(info.Addrs) > 0 {
				gw, err := n.Connect(ctx, info.Addrs[0])
				if err != nil {
					return err
				}
				if _, err := client.Reserve(ctx, n.Host(), peer.AddrInfo{ID: gw, Addrs: n.Host().Peerstore().Addrs(gw)}); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "no relay slot at the gateway: %v\n", err)
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "reachable through the gateway: %s/p2p-circuit/p2p/%s\n", info.Addrs[0], n.PeerID())
				}
			}
			for _, t := range topics {
				if err := n.Subscribe(t); err != nil {
					return err
				}
			}
			for _, a := range n.Addrs() {
				fmt.Fprintf(cmd.ErrOrStderr(), "listening on %s\n", a)
			}
			<-ctx.Done()
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&key, "key", "", "the device's key")
	f.StringVar(&as, "as", "", "the device's id, if its key was rotated in")
	f.StringSliceVar(&listen, "listen", []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}, "mesh listen multiaddrs")
	f.StringSliceVar(&topics, "topic", nil, "topics to subscribe to, as ORG/NAME (repeat)")
	f.BoolVar(&mdns, "mdns", true, "find devices on the local network with mDNS")
	return c
}

func msgAnchor(g *globals) *cobra.Command {
	var tf txFlags
	var peerDev string
	var hashes []string
	c := &cobra.Command{
		Use:   "anchor",
		Short: "Anchor a message exchange on the ledger: the RFC 6962 root of its message hashes (as msg send prints them)",
		Long: `Either party of an exchange (the sending or the receiving device) records the
Merkle root of the exchange's message hashes, in order, with the other party.
Any one message can later be proven part of the anchored exchange (mesh.ExchangeInclusion),
for example to an agreement that needs proof that a command was delivered.`,
		Example: `  thingnet msg anchor --key switch --peer lamp --hash 3f2a...e1 --hash 9b07...44`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.resolvePrincipal("device:" + peerDev)
			if err != nil {
				return err
			}
			var hs [][]byte
			for _, h := range hashes {
				b, err := hex.DecodeString(strings.TrimSpace(h))
				if err != nil || len(b) != 32 {
					return fmt.Errorf("--hash %q: want the 64 hex digits of a message's SHA-256 (msg send prints it)", h)
				}
				hs = append(hs, b)
			}
			root, err := message.ExchangeRoot(hs)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exchange root %x (%d messages)\n", root, len(hs))
			return g.send(cmd, &tf, &record.ExchangeAnchor{Peer: strings.TrimPrefix(p, "device:"), Root: root, Count: uint64(len(hs))})
		},
	}
	tf.register(c)
	c.Flags().StringVar(&peerDev, "peer", "", "the other device of the exchange (id or key name)")
	c.Flags().StringArrayVar(&hashes, "hash", nil, "a message's hash, in the exchange's order (repeat)")
	return c
}
