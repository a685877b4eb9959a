package files

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/record"
)

// DefaultReprovideInterval is how often pinned roots are announced again:
// the DHT drops a provider record 48 h after it was put (kubo reprovides
// every 22 h).
const DefaultReprovideInterval = 12 * time.Hour

// Ledger is what a file service needs of the ledger to record its own pins
// (file.pin, signed with the node's device key) and to find the nodes that
// recorded a pin of a file.
type Ledger struct {
	ID   string                        // the node's device id: the pinner
	View func() (*ledger.State, error) // the last committed state
	// Enqueue sends m with the node's key, after the other txs of that key
	// (gateway.Gateway.Enqueue); done is told once m is committed or dropped.
	Enqueue func(m record.Msg, done func(error)) error
}

// pinRecords tracks the file.pin messages queued and not yet committed, so
// that a root is not queued twice.
type pinRecords struct {
	mu      sync.Mutex
	pending map[string]bool // cid -> pinned (false: the removal)
}

// recordPin records on the ledger that this node pins root (pinned) or no
// longer does, unless the ledger already says so. Failures are logged: the
// next reprovide round records the pins that are missing.
func (s *Service) recordPin(root cid.Cid, pinned bool) {
	l := s.cfg.Ledger
	if l == nil {
		return
	}
	c := root.String()
	s.pins.mu.Lock()
	want, queued := s.pins.pending[c]
	s.pins.mu.Unlock()
	if queued && want == pinned {
		return
	}
	if !queued { // nothing on its way: ask the ledger
		recorded, err := s.pinnedOnLedger(c)
		if err != nil {
			s.log.Debug("files: reading the ledger's pins", "cid", c, "err", err)
			return
		}
		if recorded == pinned {
			return
		}
	}
	s.pins.mu.Lock()
	s.pins.pending[c] = pinned
	s.pins.mu.Unlock()
	done := func(err error) {
		s.pins.mu.Lock()
		if w, ok := s.pins.pending[c]; ok && w == pinned {
			delete(s.pins.pending, c)
		}
		s.pins.mu.Unlock()
		if err != nil {
			s.log.Warn("files: recording a pin on the ledger failed", "cid", c, "pinned", pinned, "err", err)
		}
	}
	if err := l.Enqueue(&record.FilePinMsg{CID: c, Unpin: !pinned}, done); err != nil {
		done(err)
	}
}

func (s *Service) pinnedOnLedger(c string) (bool, error) {
	st, err := s.cfg.Ledger.View()
	if err != nil {
		return false, err
	}
	ps, err := st.FilePins(c)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ps, func(p record.FilePin) bool { return p.Pinner == s.cfg.Ledger.ID }), nil
}

// pinnerConnectTimeout bounds how long a download waits to connect to the
// nodes that recorded a pin of its file.
const pinnerConnectTimeout = 10 * time.Second

// connectPinners connects to the nodes the ledger says pin root (their
// device key is their peer id; addresses from the peerstore, else the
// DHT), so that a download's session asks them first.
func (s *Service) connectPinners(ctx context.Context, root cid.Cid) {
	l := s.cfg.Ledger
	if l == nil {
		return
	}
	st, err := l.View()
	if err != nil {
		return
	}
	ps, err := st.FilePins(root.String())
	if err != nil || len(ps) == 0 {
		return
	}
	h := s.cfg.Host
	ctx, cancel := context.WithTimeout(ctx, pinnerConnectTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range ps {
		if p.Pinner == l.ID {
			continue
		}
		d, err := st.Device(p.Pinner)
		if err != nil || d.Status != record.StatusActive {
			continue
		}
		pub, err := identity.ParseDID(d.Key)
		if err != nil {
			continue
		}
		id, err := mesh.PeerID(pub)
		if err != nil || id == h.ID() || h.Network().Connectedness(id) == network.Connected {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ai := peer.AddrInfo{ID: id, Addrs: h.Peerstore().Addrs(id)}
			if len(ai.Addrs) == 0 && s.cfg.Routing != nil {
				if found, err := s.cfg.Routing.FindPeer(ctx, id); err == nil {
					ai = found
				}
			}
			if err := h.Connect(ctx, ai); err != nil {
				s.log.Debug("files: connecting to a pinner failed", "pinner", p.Pinner, "peer", id, "err", err)
			}
		}()
	}
	wg.Wait()
}

// reprovide announces every pinned root again each ReprovideInterval (the
// first round a minute after start, at most) and records on the ledger the
// pins it is missing (those a full queue or a restart lost).
func (s *Service) reprovide() {
	defer s.wg.Done()
	wait := min(s.cfg.ReprovideInterval, time.Minute)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = s.cfg.ReprovideInterval
		for _, root := range s.store.Pins() {
			if s.ctx.Err() != nil {
				return
			}
			if s.cfg.Routing != nil {
				ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ProvideTimeout)
				if err := s.cfg.Routing.Provide(ctx, root, true); err != nil {
					s.log.Debug("files: announcing a provider record again failed", "cid", root, "err", err)
				}
				cancel()
				s.reprovided.Add(1)
			}
			s.recordPin(root, true)
		}
	}
}
