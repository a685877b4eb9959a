package mesh

import (
	"bufio"
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/thingnet/thingnet/mesh/message"
)

// Deposit hands a signed message to a gateway's mailbox for its sleeping
// receiver; the result is signed by the gateway. gateway is the gateway's
// device id (its key must be reachable as a peer).
func (n *Node) Deposit(ctx context.Context, gateway string, env []byte) (*message.Result, error) {
	g, err := n.auth.Device(gateway)
	if err != nil {
		return nil, fmt.Errorf("mesh: gateway: %w", err)
	}
	pid, err := PeerID(g.Key)
	if err != nil {
		return nil, err
	}
	return n.exchange(ctx, pid, ProtoMailboxPut, g.ID, g.Key, env)
}

// Pull fetches this device's held messages from a gateway, delivers each
// to the Handler as if it had come directly (same checks, replays refused)
// and acknowledges them, so the gateway deletes them. It returns how many
// were delivered. A message the Handler refuses stays in the mailbox.
func (n *Node) Pull(ctx context.Context, gateway string) (int, error) {
	g, err := n.auth.Device(gateway)
	if err != nil {
		return 0, fmt.Errorf("mesh: gateway: %w", err)
	}
	pid, err := PeerID(g.Key)
	if err != nil {
		return 0, err
	}
	s, err := n.host.NewStream(network.WithAllowLimitedConn(ctx, "mailbox"), pid, ProtoMailboxPull)
	if err != nil {
		return 0, fmt.Errorf("mesh: pulling from %s: %w", gateway, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	r := bufio.NewReaderSize(s, 64<<10)
	w := bufio.NewWriter(s)
	req, _ := message.Marshal(sleepRequest{Device: n.id})
	if err := writeFrame(w, req); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	delivered := 0
	for {
		f, err := readFrame(r, maxPull*(message.MaxEnvelope+64)+64)
		if err != nil {
			return delivered, fmt.Errorf("mesh: pulling from %s: %w", gateway, err)
		}
		var batch pullBatch
		if err := message.Unmarshal(f, &batch); err != nil {
			return delivered, fmt.Errorf("%w: pull batch: %v", message.ErrMalformed, err)
		}
		var upto uint64
		var stop error
		for _, it := range batch.Items {
			res := n.accept(ctx, pid, [][]byte{it.Env}, acceptMailbox)[0]
			if res.Status == message.StatusRejected || res.Status == message.StatusInternal {
				stop = res.Err() // keep it and what follows for the next pull
				break
			}
			if res.Status == message.StatusDelivered {
				delivered++
			} else {
				n.stats.refused[res.Status].Add(1) // forged or replayed: drop it
			}
			upto = it.Seq
		}
		// Message numbers start at 1, so Upto 0 acknowledges nothing.
		ack := pullAck{Upto: upto, Done: stop != nil || !batch.More || len(batch.Items) == 0}
		b, _ := message.Marshal(ack)
		if err := writeFrame(w, b); err != nil {
			return delivered, err
		}
		if err := w.Flush(); err != nil {
			return delivered, err
		}
		if ack.Done {
			if _, err := readFrame(r, 64); err != nil {
				return delivered, fmt.Errorf("mesh: pull from %s: %w", gateway, err)
			}
			return delivered, stop
		}
	}
}

// Sleep opens a wake channel to a gateway keeping this device's mailbox:
// the returned channel receives the number of waiting messages each time
// the gateway wakes the device for an authorized sender within budget. It
// is closed when ctx ends or the gateway goes away.
func (n *Node) Sleep(ctx context.Context, gateway string) (<-chan uint64, error) {
	g, err := n.auth.Device(gateway)
	if err != nil {
		return nil, fmt.Errorf("mesh: gateway: %w", err)
	}
	pid, err := PeerID(g.Key)
	if err != nil {
		return nil, err
	}
	s, err := n.host.NewStream(network.WithAllowLimitedConn(ctx, "wake"), pid, ProtoWake)
	if err != nil {
		return nil, fmt.Errorf("mesh: wake channel to %s: %w", gateway, err)
	}
	w := bufio.NewWriter(s)
	req, _ := message.Marshal(sleepRequest{Device: n.id})
	if err := writeFrame(w, req); err != nil || w.Flush() != nil {
		s.Reset()
		return nil, fmt.Errorf("mesh: wake channel to %s: %v", gateway, err)
	}
	out := make(chan uint64, 16)
	go func() {
		<-ctx.Done()
		s.Reset()
	}()
	go func() {
		defer close(out)
		r := bufio.NewReader(s)
		for {
			f, err := readFrame(r, 64)
			if err != nil {
				return
			}
			var wf wakeFrame
			if message.Unmarshal(f, &wf) != nil {
				return
			}
			select {
			case out <- wf.Waiting:
			default: // a wake-up is already waiting to be seen
			}
		}
	}()
	return out, nil
}

// AddPeer records a peer's addresses (for example a relay circuit address
// "/ip4/…/p2p/<relay>/p2p-circuit/p2p/<peer>") so that Send can reach it.
func (n *Node) AddPeer(addr string) (peer.ID, error) {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return "", fmt.Errorf("mesh: address %q: %w", addr, err)
	}
	n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, 10*365*24*3600*1e9)
	return ai.ID, nil
}
