package mesh

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// gater refuses connections from peers that were banned for sending too
// many refused messages, for a while.
type gater struct {
	mu       sync.Mutex
	max      int
	banFor   time.Duration
	refusals map[peer.ID]*refusalCount
	banned   map[peer.ID]time.Time // until
}

type refusalCount struct {
	n     int
	since time.Time
}

func newGater(max int, banFor time.Duration) *gater {
	return &gater{max: max, banFor: banFor, refusals: map[peer.ID]*refusalCount{}, banned: map[peer.ID]time.Time{}}
}

// refused counts one refused message from p and reports whether p is now banned.
func (g *gater) refused(p peer.ID, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.refusals[p]
	if c == nil || now.Sub(c.since) > time.Minute {
		if len(g.refusals) > 100_000 {
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

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return !g.isBanned(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.isBanned(p) }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.isBanned(p)
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
