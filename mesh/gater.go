package mesh

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/thingnet/thingnet/ratelimit"
)

// gater is the host's libp2p connection gater. It refuses connections
// from peers that were banned for sending too many refused messages, for
// a while, and (with Config.RegisteredOnly) from keys that are not active
// registered devices, each as early in the handshake as libp2p can tell:
// a peer's key is known only once the security handshake is done
// (InterceptSecured; for keys that their peer id does not embed, such as
// P-256 ones, once the connection is upgraded). A remote address whose
// handshakes keep being refused is itself refused for a while at accept,
// before any handshake: a banned device that keeps redialling then costs
// a closed socket, not a Noise handshake per dial. And every address has
// an inbound connection rate, also checked at accept.
type gater struct {
	mu       sync.Mutex
	max      int
	banFor   time.Duration
	refusals map[peer.ID]*refusalCount
	banned   map[peer.ID]time.Time // until

	// admit, if set, decides after the security handshake whether a peer
	// may connect at all (Config.RegisteredOnly).
	admit func(peer.ID, lcrypto.PubKey) bool
	// accepts bounds inbound connections per remote IP; refusedBy counts
	// the handshakes refused per remote IP, and an IP over its rate is in
	// blocked until it has a token again.
	accepts   *ratelimit.Limiter
	refusedBy *ratelimit.Limiter
	blocked   map[string]time.Time // IP -> until (under mu)
	clock     ratelimit.Clock

	acceptsRefused    atomic.Uint64 // connections refused at accept, before any handshake
	handshakesRefused atomic.Uint64 // connections refused after the security handshake
}

type refusalCount struct {
	n     int
	since time.Time
}

// Per remote IP: inbound connections, and handshakes refused (a banned or
// unadmitted peer) before the address is refused at accept.
const (
	acceptsPerSec, acceptBurst   = 50, 200
	refusedPerSec, refusedBurst  = 2, 10
	gaterMaxAddrs, gaterMaxPeers = 100_000, 100_000
)

func newGater(max int, banFor time.Duration, clock ratelimit.Clock) *gater {
	limits := func(perSec float64, burst int) ratelimit.Limits {
		l := ratelimit.DefaultLimits()
		l.ConnectsPerSec, l.ConnectBurst = perSec, burst
		return l
	}
	return &gater{max: max, banFor: banFor, refusals: map[peer.ID]*refusalCount{}, banned: map[peer.ID]time.Time{},
		accepts:   ratelimit.New(limits(acceptsPerSec, acceptBurst), gaterMaxAddrs, clock),
		refusedBy: ratelimit.New(limits(refusedPerSec, refusedBurst), gaterMaxAddrs, clock),
		blocked:   map[string]time.Time{}, clock: clock}
}

// refused counts one refused message from p and reports whether p is now banned.
func (g *gater) refused(p peer.ID, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.refusals[p]
	if c == nil || now.Sub(c.since) > time.Minute {
		if len(g.refusals) > gaterMaxPeers {
			clear(g.refusals) // bounded: a forgotten count only delays a ban
		}
		c = &refusalCount{since: now}
		g.refusals[p] = c
	}
	c.n++
	if c.n < g.max {
		return false
	}
	delete(g.refusals, p)
	g.banned[p] = now.Add(g.banFor)
	return true
}

func (g *gater) isBanned(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.banned[p]
	if !ok {
		return false
	}
	if time.Now().After(until) {
		delete(g.banned, p)
		return false
	}
	return true
}

// remoteIP is the IP a connection comes from ("" for a relayed one: the
// relay's address is not the peer's).
func remoteIP(c network.ConnMultiaddrs) string {
	a := c.RemoteMultiaddr()
	if a == nil {
		return ""
	}
	if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return ""
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return ""
	}
	return ip.String()
}

// refuseHandshake counts a connection refused after its handshake against
// its remote IP; an IP over its rate is refused at accept until it has a
// token again.
func (g *gater) refuseHandshake(dir network.Direction, c network.ConnMultiaddrs) {
	g.handshakesRefused.Add(1)
	ip := remoteIP(c)
	if dir != network.DirInbound || ip == "" {
		return
	}
	if d := g.refusedBy.AllowConnect(ip); !d.Allowed {
		g.mu.Lock()
		if len(g.blocked) > gaterMaxAddrs {
			clear(g.blocked) // bounded: a forgotten block costs a handshake
		}
		g.blocked[ip] = g.clock.Now().Add(d.RetryAfter)
		g.mu.Unlock()
	}
}

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return !g.isBanned(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.isBanned(p) }

// InterceptAccept sees only the remote address, before any handshake.
func (g *gater) InterceptAccept(c network.ConnMultiaddrs) bool {
	ip := remoteIP(c)
	if ip == "" {
		return true
	}
	g.mu.Lock()
	until, ok := g.blocked[ip]
	if ok && !g.clock.Now().Before(until) {
		delete(g.blocked, ip)
		ok = false
	}
	g.mu.Unlock()
	if ok || !g.accepts.AllowConnect(ip).Allowed {
		g.acceptsRefused.Add(1)
		return false
	}
	return true
}

// InterceptSecured knows the peer, after the security handshake.
func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	ok := !g.isBanned(p)
	if ok && g.admit != nil {
		if pub, err := p.ExtractPublicKey(); err == nil {
			ok = g.admit(p, pub)
		} // else the key is known only in InterceptUpgraded
	}
	if !ok {
		g.refuseHandshake(dir, c)
	}
	return ok
}

// InterceptUpgraded admits the peers whose key their id does not embed.
func (g *gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	p := c.RemotePeer()
	if g.admit == nil {
		return true, 0
	}
	if _, err := p.ExtractPublicKey(); err == nil {
		return true, 0 // admitted in InterceptSecured
	}
	if pub := c.RemotePublicKey(); pub != nil && g.admit(p, pub) {
		return true, 0
	}
	g.refuseHandshake(c.Stat().Direction, c)
	return false, 0
}
