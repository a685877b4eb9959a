package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
	"github.com/thingnet/thingnet/ratelimit"
)

// Config configures a mesh node. Key and Authority are required.
type Config struct {
	Key       *identity.Key // the device's (or gateway's) ledger key; it is the libp2p identity
	ID        string        // the device id; default Key.ID()
	Authority message.Authority

	// Listen addresses (multiaddrs); default TCP and QUIC on all
	// interfaces, ports chosen by the system.
	Listen []string
	// Bootstrap peers (multiaddrs with /p2p/...) to connect to at start.
	Bootstrap []string

	MDNS      bool   // find peers on the local network with mDNS
	MDNSName  string // mDNS service name; default "_thingnet-<chain>._udp"
	DHT       bool   // Kademlia DHT for peer routing (server mode if Relay is set)
	Relay     bool   // act as a circuit relay v2 for registered devices (gateways)
	NoPubSub  bool   // do not start gossipsub
	Mailboxes *MailboxConfig

	// Handler receives every message delivered to this node, directly, from
	// a mailbox pull, or on a topic it subscribed to. A message is
	// acknowledged (receipt "delivered") only after Handler returns nil.
	Handler func(context.Context, *Delivery) error

	// PeerLimits bounds what one peer may send: messages per second and
	// bytes per second with bursts (ratelimit.Limits' per-device fields).
	PeerLimits ratelimit.Limits
	// MaxRefusals: a peer that sends this many refused messages within a
	// minute is disconnected and refused for BanFor. Default 100.
	MaxRefusals int
	BanFor      time.Duration // default 10 minutes
	// RegisteredOnly refuses connections, right after their security
	// handshake, from keys that are not the current key of an active
	// registered device (as the relay's ACL does). Leave it off where the
	// host serves others too: a gateway's files are fetched by stock IPFS
	// nodes, and a DHT server answers any peer.
	RegisteredOnly bool
	// OnBan, if set, is called (on its own goroutine) with the device id
	// of a banned peer that is a registered device: the gateway reports it
	// for quarantine (gateway.ReportOffender). Peers of unknown keys are
	// only banned.
	OnBan func(device string)

	Replay message.WindowStore // keeps replay windows across restarts; nil: memory only
	Logger *slog.Logger
	Clock  ratelimit.Clock
}

// Delivery is a message delivered to this node, verified and authorized.
type Delivery struct {
	*message.Envelope
	Sender    *message.Device
	Plaintext []byte  // the body, opened if it was sealed
	Peer      peer.ID // the peer that handed it over (the sender, a relay, or a mailbox gateway)
	Via       string  // "direct", "mailbox" or "topic"
}

// Node is a running mesh node.
type Node struct {
	cfg   Config
	id    string
	host  host.Host
	dht   *dht.IpfsDHT
	ps    *pubsub.PubSub
	mdns  interface{ Close() error }
	log   *slog.Logger
	auth  message.Authority
	gater *gater

	peerLimit *ratelimit.Limiter
	replay    *message.ReplayGuard
	mailbox   *Mailbox

	topicsMu sync.Mutex
	topics   map[string]*topicState

	sessMu   sync.Mutex
	sessions map[sessionKey]*session

	peersMu     sync.Mutex
	peerDevices map[peer.ID]string // devices whose key is not their id, learnt from verified messages

	seqMu   sync.Mutex
	lastSeq uint64

	stats stats

	handlersMu sync.Mutex
	closing    bool
	handlers   sync.WaitGroup // stream handlers running

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// New starts a mesh node.
func New(c Config) (*Node, error) {
	if c.Key == nil || c.Authority == nil {
		return nil, errors.New("mesh: Config.Key and Config.Authority are required")
	}
	if c.ID == "" {
		c.ID = c.Key.ID()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = ratelimit.SystemClock()
	}
	if c.PeerLimits == (ratelimit.Limits{}) {
		c.PeerLimits = DefaultPeerLimits()
	}
	if err := c.PeerLimits.Validate(); err != nil {
		return nil, fmt.Errorf("mesh: peer limits: %w", err)
	}
	if c.MaxRefusals <= 0 {
		c.MaxRefusals = 100
	}
	if c.BanFor <= 0 {
		c.BanFor = 10 * time.Minute
	}
	if len(c.Listen) == 0 {
		c.Listen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}
	}
	if c.MDNSName == "" {
		c.MDNSName = "_thingnet-" + c.Authority.ChainID() + "._udp"
	}
	priv, err := libp2pKey(c.Key)
	if err != nil {
		return nil, err
	}
	rm, err := resourceManager()
	if err != nil {
		return nil, fmt.Errorf("mesh: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(64, 256, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg: c, id: c.ID, log: c.Logger, auth: c.Authority,
		gater:     newGater(c.MaxRefusals, c.BanFor, c.Clock),
		peerLimit: ratelimit.New(c.PeerLimits, 100_000, c.Clock),
		replay:    message.NewReplayGuard(c.Replay),
		topics:    map[string]*topicState{},
		sessions:  map[sessionKey]*session{},

		peerDevices: map[peer.ID]string{},
		ctx:         ctx, cancel: cancel,
	}
	if c.RegisteredOnly {
		n.gater.admit = n.registeredKey
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings(c.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		// TLS 1.3 first, Noise second (what an older node offers): with
		// AES-NI on both ends Go's TLS picks AES-GCM, cheaper per byte than
		// Noise's ChaCha20-Poly1305 (7% of a file distribution's CPU);
		// a device without AES hardware puts ChaCha20 first itself.
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(n.gater),
		libp2p.EnableRelay(), // may dial through relays
		libp2p.DisableMetrics(),
		libp2p.UserAgent("thingnet"),
	}
	if c.Relay {
		opts = append(opts, libp2p.DisableRelay()) // the service is started below with our ACL
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mesh: starting libp2p host: %w", err)
	}
	n.host = h
	fail := func(err error) (*Node, error) {
		n.Close()
		return nil, err
	}
	if c.Relay {
		rc := relay.DefaultResources()
		rc.Limit = &relay.RelayLimit{Duration: 10 * time.Minute, Data: 1 << 20}
		if _, err := relay.New(h, relay.WithResources(rc), relay.WithACL(relayACL{n})); err != nil {
			return fail(fmt.Errorf("mesh: relay service: %w", err))
		}
	}
	if c.DHT {
		mode := dht.ModeClient
		if c.Relay {
			mode = dht.ModeServer
		}
		d, err := dht.New(h, dht.Mode(mode), dht.ProtocolPrefix(protocol.ID("/thingnet/"+protocolSafe(c.Authority.ChainID()))))
		if err != nil {
			return fail(fmt.Errorf("mesh: dht: %w", err))
		}
		n.dht = d
	}
	if !c.NoPubSub {
		ps, err := pubsub.NewGossipSub(ctx, h,
			pubsub.WithPeerFilter(n.topicPeerFilter),
			pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
			pubsub.WithValidateQueueSize(1024),
			pubsub.WithMaxMessageSize(message.MaxEnvelope+1024),
		)
		if err != nil {
			return fail(fmt.Errorf("mesh: gossipsub: %w", err))
		}
		n.ps = ps
	}
	if c.Mailboxes != nil {
		mb, err := openMailbox(*c.Mailboxes, n)
		if err != nil {
			return fail(err)
		}
		n.mailbox = mb
	}
	n.registerProtocols()
	if c.MDNS {
		s := mdns.NewMdnsService(h, c.MDNSName, mdnsNotifee{n})
		if err := s.Start(); err != nil {
			return fail(fmt.Errorf("mesh: mDNS: %w", err))
		}
		n.mdns = s
	}
	for _, a := range c.Bootstrap {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			return fail(fmt.Errorf("mesh: bootstrap peer %q: %w", a, err))
		}
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err = h.Connect(cctx, *ai)
		ccancel()
		if err != nil {
			n.log.Warn("mesh: bootstrap peer unreachable", "peer", a, "err", err)
		}
	}
	if n.dht != nil {
		if err := n.dht.Bootstrap(ctx); err != nil {
			return fail(fmt.Errorf("mesh: dht bootstrap: %w", err))
		}
	}
	return n, nil
}

// DefaultPeerLimits: what one peer may send before it is throttled.
func DefaultPeerLimits() ratelimit.Limits {
	l := ratelimit.DefaultLimits()
	l.MsgsPerSec, l.Burst = 2_000, 4_000 // messages per second from one peer
	l.BytesPerSec, l.ByteBurst = 64<<20, 64<<20
	l.MaxPacket = maxFrame
	return l
}

// resourceManager bounds what peers can make this host hold: the libp2p
// defaults scaled to the machine, with tighter limits per peer so that one
// peer cannot take what others need.
func resourceManager() (network.ResourceManager, error) {
	perPeer := rcmgr.ResourceLimits{
		Conns: 8, ConnsInbound: 4, ConnsOutbound: 8,
		Streams: 256, StreamsInbound: 128, StreamsOutbound: 256,
		Memory: 32 << 20,
		FD:     8,
	}
	partial := rcmgr.PartialLimitConfig{
		PeerDefault: perPeer,
		System: rcmgr.ResourceLimits{
			ConnsInbound: 1024,
		},
	}
	limits := partial.Build(rcmgr.DefaultLimits.AutoScale())
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
}

func protocolSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '/' || c < 0x21 || c > 0x7e {
			b[i] = '_'
		}
	}
	return string(b)
}

// ID is the node's device id.
func (n *Node) ID() string { return n.id }

// Host is the libp2p host (for files and other protocols on the same host).
func (n *Node) Host() host.Host { return n.host }

// PeerID is the node's libp2p peer id.
func (n *Node) PeerID() peer.ID { return n.host.ID() }

// Addrs are the node's addresses with its peer id, for others to dial.
func (n *Node) Addrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.Encapsulate(ma.StringCast("/p2p/"+n.host.ID().String())).String())
	}
	return out
}

// AddrInfo is the node's peer id and addresses.
func (n *Node) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}
}

// Connect dials a peer given by a multiaddr with /p2p/.
func (n *Node) Connect(ctx context.Context, addr string) (peer.ID, error) {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return "", fmt.Errorf("mesh: address %q: %w", addr, err)
	}
	if err := n.host.Connect(ctx, *ai); err != nil {
		return "", fmt.Errorf("mesh: connecting to %s: %w", addr, err)
	}
	return ai.ID, nil
}

// Peers are the peers currently connected.
func (n *Node) Peers() []peer.ID { return n.host.Network().Peers() }

// Close stops the node; later calls return the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	n.cancel()
	var errs []error
	if n.mdns != nil {
		errs = append(errs, n.mdns.Close())
	}
	if n.dht != nil {
		errs = append(errs, n.dht.Close())
	}
	n.handlersMu.Lock()
	n.closing = true
	n.handlersMu.Unlock()
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	n.handlers.Wait()
	n.wg.Wait()
	if n.mailbox != nil {
		errs = append(errs, n.mailbox.close())
	}
	return errors.Join(errs...)
}

type mdnsNotifee struct{ n *Node }

// mdnsAttempts bounds the dials to one peer found by mDNS.
const mdnsAttempts = 4

// HandlePeerFound dials a peer found on the local network. Two nodes that
// find each other at the same moment dial each other at once, and the two
// Noise handshakes of a simultaneous open can both fail; mDNS reports a
// peer only once, so the dial is retried: the node with the greater peer ID
// lets the other dial first, and every retry waits a random while, so two
// retries rarely collide again.
func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == m.n.host.ID() {
		return
	}
	m.n.stats.mdnsFound.Add(1)
	wait := time.Duration(0)
	if m.n.host.ID() > ai.ID {
		wait = 500 * time.Millisecond
	}
	for attempt := 1; attempt <= mdnsAttempts; attempt++ {
		t := time.NewTimer(wait)
		select {
		case <-m.n.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if m.n.host.Network().Connectedness(ai.ID) == network.Connected {
			return // the other side's dial won
		}
		ctx, cancel := context.WithTimeout(m.n.ctx, 10*time.Second)
		err := m.n.host.Connect(ctx, ai)
		cancel()
		if err == nil {
			return
		}
		m.n.log.Debug("mesh: mDNS peer unreachable", "peer", ai.ID, "attempt", attempt, "err", err)
		wait = time.Duration(200+rand.IntN(800)) * time.Millisecond
	}
}

// relayACL lets only active registered devices reserve a slot on, or
// connect through, a gateway's relay.
type relayACL struct{ n *Node }

func (a relayACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return a.n.registeredPeer(p) }
func (a relayACL) AllowConnect(src peer.ID, _ ma.Multiaddr, _ peer.ID) bool {
	return a.n.registeredPeer(src)
}

// registeredPeer reports whether the peer is an active registered device
// (see peerDevice).
func (n *Node) registeredPeer(p peer.ID) bool {
	d, err := n.peerDevice(p)
	return err == nil && d.Active
}

// registeredKey is registeredPeer for a peer whose key is known from its
// handshake but not yet in the peerstore (the connection gater's view).
func (n *Node) registeredKey(p peer.ID, lk lcrypto.PubKey) bool {
	pub, err := ledgerKey(lk)
	if err != nil {
		return false
	}
	d, err := n.keyDevice(p, pub)
	return err == nil && d.Active
}
