package mesh

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
)

// TestMeshFloodRedial is TestMeshFlood's scenario (test/e2e) inside one
// process, with the attacker it left out: three devices deposit for a
// sleeping device into a gateway's mailbox while a granted device floods
// the same mailbox until it is banned, then keeps redialling the gateway
// from the legitimate devices' address (~80 dials a second, as measured in
// docs/security.md). The legitimate deposits' p99 under attack stays
// within 2x of the baseline's (or of 20 ms, as TestMeshFlood), and every
// acknowledged deposit reaches the device. The mailbox's disk is Pebble's
// in-memory one with every fsync taking floodFsync: a disk of known speed,
// where the machine's shared disk adds its own stalls (up to 100-300 ms
// here, under other work) that no attacker caused.
func TestMeshFloodRedial(t *testing.T) {
	if raceEnabled {
		// A latency criterion, 10x slower under the race detector; the
		// mailbox's locking is checked there by TestMailboxSlowFsync.
		t.Skip("latency test: not under the race detector")
	}
	const floodFsync = 5 * time.Millisecond
	s := newMailboxSetup(t, MailboxConfig{fs: newSlowDisk(floodFsync)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := s.l
	legit := make([]*Node, 3)
	for i := range legit {
		k := l.device("acme", "sensor", identity.Ed25519)
		l.grant("acme", "device:"+k.ID(), message.KindMessage, "device:"+s.bKey.ID())
		legit[i] = startNode(t, l, k, nil)
		connect(t, legit[i], s.g)
	}
	rogueKey := l.device("acme", "sensor", identity.Ed25519)
	l.grant("acme", "device:"+rogueKey.ID(), message.KindMessage, "device:"+s.bKey.ID())
	rogue := startNode(t, l, rogueKey, nil)
	connect(t, rogue, s.g)
	b := s.startB()
	connect(t, b, s.g)

	var mu sync.Mutex
	phase := "warm-up" // sessions open, the store's first writes
	lat := map[string][]time.Duration{}
	acked := map[[32]byte]bool{}
	var slow []string
	fails := 0
	phaseStart := time.Now()
	lctx, lcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, m := range legit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for lctx.Err() == nil {
				env, err := m.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("reading for b")})
				if err != nil {
					t.Error(err)
					return
				}
				t0 := time.Now()
				dctx, dcancel := context.WithTimeout(lctx, 10*time.Second)
				res, err := m.Deposit(dctx, s.gKey.ID(), env)
				dcancel()
				d := time.Since(t0)
				mu.Lock()
				if err == nil && res.Status == message.StatusDelivered {
					e, _ := message.Decode(env)
					acked[e.Hash] = true
					lat[phase] = append(lat[phase], d)
					if d > 50*time.Millisecond && len(slow) < 30 {
						slow = append(slow, fmt.Sprintf("dev%d %v at %s+%v", i, d.Round(time.Millisecond), phase, t0.Sub(phaseStart).Round(10*time.Millisecond)))
					}
				} else if lctx.Err() == nil {
					fails++
					t.Logf("dev%d: deposit not acknowledged (%s): %v %v", i, phase, err, res)
				}
				mu.Unlock()
				select {
				case <-lctx.Done():
				case <-tick.C:
				}
			}
		}()
	}
	// The machine's own stalls: this machine is shared, and when others
	// keep its cores busy the whole process waits for one, devices,
	// gateway and B at once. A goroutine that takes no lock and touches no
	// disk sleeps 5 ms at a time and records how late it wakes, by phase.
	late := map[string][]time.Duration{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for lctx.Err() == nil {
			t0 := time.Now()
			time.Sleep(5 * time.Millisecond)
			d := time.Since(t0) - 5*time.Millisecond
			mu.Lock()
			late[phase] = append(late[phase], d)
			mu.Unlock()
		}
	}()
	// B reads its mail every second, as a reader beside the deposits.
	var pullErrs atomic.Int64
	var pulls []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			pctx, pcancel := context.WithTimeout(lctx, 10*time.Second)
			t0 := time.Now()
			n, err := b.Pull(pctx, s.gKey.ID())
			if err != nil && lctx.Err() == nil {
				pullErrs.Add(1)
			}
			mu.Lock()
			pulls = append(pulls, fmt.Sprintf("%s+%v:%d/%v", phase, t0.Sub(phaseStart).Round(10*time.Millisecond), n, time.Since(t0).Round(time.Millisecond)))
			mu.Unlock()
			pcancel()
		}
	}()
	setPhase := func(p string) {
		mu.Lock()
		phase, phaseStart = p, time.Now()
		mu.Unlock()
	}
	samples := func(p string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(lat[p])
	}
	waitFor(t, 30*time.Second, func() bool { return samples("warm-up") >= 30 })
	setPhase("baseline")
	waitFor(t, 30*time.Second, func() bool { return samples("baseline") >= 150 })

	// The attack: the granted device floods until cut off, then redials.
	setPhase("flood")
	attackStart := time.Now()
	actx, acancel := context.WithCancel(ctx)
	var rogueSent, rogueStored, rogueRefused atomic.Int64
	var rwg sync.WaitGroup
	for w := 0; w < 16; w++ {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for actx.Err() == nil {
				env, err := rogue.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("flood")})
				if err != nil {
					return
				}
				rogueSent.Add(1)
				res, err := rogue.Deposit(actx, s.gKey.ID(), env)
				switch {
				case err != nil:
					return // cut off
				case res.Status == message.StatusDelivered:
					rogueStored.Add(1)
				default:
					rogueRefused.Add(1)
				}
			}
		}()
	}
	rwg.Wait()
	if s.g.Stats().Bans != 1 {
		t.Fatalf("bans %d after the flood; want 1", s.g.Stats().Bans)
	}
	banned := time.Since(attackStart)
	setPhase("redial")
	readmitted := &connCounter{p: rogue.PeerID()}
	s.g.Host().Network().Notify(readmitted)
	stopRedial := redial(t, rogueKey, s.g.AddrInfo(), 80)
	waitFor(t, 60*time.Second, func() bool { return samples("redial") >= 300 })
	dials := stopRedial()
	acancel()
	setPhase("after")
	lcancel()
	wg.Wait()
	attackFor := time.Since(attackStart)
	if n := readmitted.n.Load(); n > 0 {
		t.Errorf("the banned device connected again %d times", n)
	}

	// Every acknowledged deposit reaches B.
	got := map[[32]byte]bool{}
	for {
		select {
		case d := <-s.box.ch:
			got[d.Hash] = true
			continue
		default:
		}
		n, err := b.Pull(ctx, s.gKey.ID())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 && len(s.box.ch) == 0 {
			break
		}
	}
	lost := 0
	for h := range acked {
		if !got[h] {
			lost++
		}
	}
	base, att := lat["baseline"], append(lat["flood"], lat["redial"]...)
	st := s.g.Stats()
	for _, p := range []string{"baseline", "flood", "redial"} {
		t.Logf("legit deposits, %s: %d, p50 %v p99 %v max %v", p, len(lat[p]), quantile(lat[p], 0.5), quantile(lat[p], 0.99), quantile(lat[p], 1))
	}
	t.Logf("rogue: %d sent, %d stored, %d refused, banned %v after the attack began; then %d redials in %v (%d refused at accept, %d after the handshake); deposits over 50 ms: %v",
		rogueSent.Load(), rogueStored.Load(), rogueRefused.Load(), banned.Round(time.Millisecond), dials, (attackFor - banned).Round(time.Millisecond),
		s.g.gater.acceptsRefused.Load(), s.g.gater.handshakesRefused.Load(), slow)
	t.Logf("pulls: %v", pulls)
	t.Logf("gateway: dropped %d, pulled %d; acked %d, lost %d, not acknowledged %d, pull errors %d", st.MailboxDropped, st.MailboxPulled, len(acked), lost, fails, pullErrs.Load())
	if lost > 0 {
		t.Errorf("%d of %d acknowledged deposits lost", lost, len(acked))
	}
	for _, p := range []string{"baseline", "flood", "redial"} {
		t.Logf("the process's own stalls (a 5 ms sleep's lateness), %s: p50 %v p99 %v max %v", p, quantile(late[p], 0.5), quantile(late[p], 0.99), quantile(late[p], 1))
	}
	// As TestMeshFlood: within 2x of the baseline, of 20 ms, or of the
	// longest stall the machine put the whole process in meanwhile (where
	// TestMeshFlood takes its disk's fsync p99: here the disk is fixed and
	// the cores are shared). Such a stall holds up the three devices at
	// once, so two of them make the p99 of the attack's ~330 deposits.
	stalls := quantile(append(late["flood"], late["redial"]...), 1)
	if p99 := quantile(att, 0.99); p99 > 2*max(quantile(base, 0.99), stalls, 20*time.Millisecond) {
		t.Errorf("legit p99 under attack %v is more than 2x the baseline's %v (the process's longest stall meanwhile: %v)", p99, quantile(base, 0.99), stalls)
	}
}

// redial dials the gateway as key, perSec times a second, from a bare
// libp2p host (a banned device that keeps reconnecting), until stop is
// called; stop returns how many dials it made.
func redial(t *testing.T, key *identity.Key, gw peer.AddrInfo, perSec int) (stop func() int64) {
	t.Helper()
	priv, err := libp2pKey(key)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New), libp2p.Muxer(yamux.ID, yamux.DefaultTransport), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var dials int64
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / time.Duration(perSec))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			h.Network().(*swarm.Swarm).Backoff().Clear(gw.ID)
			dctx, dcancel := context.WithTimeout(ctx, time.Second)
			dials++
			if h.Connect(dctx, gw) == nil {
				_ = h.Network().ClosePeer(gw.ID)
			}
			dcancel()
		}
	}()
	return func() int64 {
		cancel()
		<-done
		h.Close()
		return dials
	}
}

// connCounter counts the connections a host admits from one peer.
type connCounter struct {
	network.NoopNotifiee
	p peer.ID
	n atomic.Int64
}

func (c *connCounter) Connected(_ network.Network, conn network.Conn) {
	if conn.RemotePeer() == c.p {
		c.n.Add(1)
	}
}

// quantile is the q-quantile of ds (0 for none).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
