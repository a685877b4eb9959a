package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
)

func (n *Node) registerProtocols() {
	n.host.SetStreamHandler(ProtoMessage, n.tracked(func(s network.Stream) { n.serveBatches(s, "direct") }))
	if n.mailbox != nil {
		n.host.SetStreamHandler(ProtoMailboxPut, n.tracked(func(s network.Stream) { n.serveBatches(s, "mailbox") }))
		n.host.SetStreamHandler(ProtoMailboxPull, n.tracked(n.mailbox.servePull))
		n.host.SetStreamHandler(ProtoWake, n.tracked(n.mailbox.serveWake))
	}
}

// tracked counts a stream handler in n.handlers, so Close waits for every
// handler to end before it closes the mailbox store they write to.
func (n *Node) tracked(h network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		n.handlersMu.Lock()
		if n.closing {
			n.handlersMu.Unlock()
			s.Reset()
			return
		}
		n.handlers.Add(1)
		n.handlersMu.Unlock()
		defer n.handlers.Done()
		h(s)
	}
}

// serveBatches reads messages off a stream and answers each batch with
// one signed receipt. A reader takes frames off the stream as they come;
// the checker takes all that have arrived (up to maxBatch) as one batch.
// So a lone message is answered at once, and under load, while one batch
// is being verified the next one gathers: one batch verification and one
// receipt then serve many messages.
func (n *Node) serveBatches(s network.Stream, via string) {
	defer s.Close()
	p := s.Conn().RemotePeer()
	if n.gater.isBanned(p) {
		s.Reset()
		return
	}
	n.keepDevice(p)
	in := make(chan []byte, 4*maxBatch)
	var readErr error
	go func() {
		defer close(in)
		r := bufio.NewReaderSize(s, 64<<10)
		for {
			_ = s.SetReadDeadline(time.Now().Add(5 * time.Minute))
			f, err := readFrame(r, maxFrame)
			if err != nil {
				readErr = err
				return
			}
			in <- f
		}
	}()
	defer func() {
		for range in { // let the reader finish
		}
	}()
	w := bufio.NewWriterSize(s, 4<<10)
	for {
		f, ok := <-in
		if !ok {
			if !errors.Is(readErr, io.EOF) {
				s.Reset()
			}
			return
		}
		frames := [][]byte{f}
	gather:
		for len(frames) < maxBatch {
			select {
			case f, ok := <-in:
				if !ok {
					break gather
				}
				frames = append(frames, f)
			default:
				break gather
			}
		}
		var results []message.Result
		if via == "mailbox" {
			results = n.mailbox.deposit(n.ctx, p.String(), frames)
		} else {
			results = n.accept(n.ctx, p, frames, acceptDirect)
		}
		rc, err := message.SignReceipt(n.cfg.Key, n.id, message.Receipt{Chain: n.auth.ChainID(), By: n.id, Results: results})
		if err == nil {
			err = writeFrame(w, rc)
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			s.Reset()
			return
		}
		if n.countRefusals(p, results) {
			s.Reset()
			return
		}
	}
}

// countRefusals feeds refused results to the gater; it reports whether the
// peer is now banned (its connections are then closed).
func (n *Node) countRefusals(p peer.ID, results []message.Result) bool {
	for _, r := range results {
		if r.Status == message.StatusDelivered || r.Status == message.StatusRejected || r.Status == message.StatusInternal {
			continue
		}
		n.stats.refused[r.Status].Add(1)
		if n.gater.refused(p, time.Now()) {
			n.stats.bans.Add(1)
			n.log.Warn("mesh: peer banned for refused messages", "peer", p, "for", n.cfg.BanFor)
			n.host.ConnManager().Unprotect(p, deviceTag)
			go n.host.Network().ClosePeer(p)
			if n.cfg.OnBan != nil {
				go func() {
					if d, err := n.peerDevice(p); err == nil {
						n.cfg.OnBan(d.ID)
					}
				}()
			}
			return true
		}
	}
	return false
}

// deviceTag protects registered devices' connections in the connection
// manager.
const deviceTag = "thingnet-device"

// keepDevice exempts the connections of a peer that is a registered,
// active device from the connection manager's trimming. Under a flood of
// connections the manager otherwise trims devices' connections with the
// attackers' once they are past their grace period (a sleeping device's
// idle wake channel among the first); a device banned for refused messages
// loses the protection.
func (n *Node) keepDevice(p peer.ID) {
	if n.registeredPeer(p) {
		n.host.ConnManager().Protect(p, deviceTag)
	}
}

type acceptMode int

const (
	acceptDirect  acceptMode = iota // from the sender itself: the peer must be the sender
	acceptMailbox                   // pulled from a mailbox: any peer may hand it over
)

// Accept runs the receiver's checks on messages that came over another
// transport (an MQTT broker, a file): sender active and granted, fresh,
// signed, then opens them and hands them to the Handler, as for messages
// pulled from a mailbox. It returns one result per message.
func (n *Node) Accept(ctx context.Context, msgs [][]byte) []message.Result {
	return n.accept(ctx, "", msgs, acceptMailbox)
}

// checked is a message that passed the cheap checks, waiting for its
// signature to be verified.
type checked struct {
	i      int
	env    *message.Envelope
	sender *message.Device
}

// accept runs the receiver's checks on a batch, cheapest first (size,
// decoding, receiver, peer limits, ledger status and grant, replay), then
// verifies the signatures together, decrypts and hands messages to the
// Handler. It returns one result per frame, in order.
func (n *Node) accept(ctx context.Context, p peer.ID, frames [][]byte, mode acceptMode) []message.Result {
	results := make([]message.Result, len(frames))
	var todo []checked
	var peerPub identity.PublicKey
	var peerErr error
	if mode == acceptDirect {
		peerPub, peerErr = n.peerKey(p)
	}
	for i, f := range frames {
		n.stats.received.Add(1)
		env, sender, err := n.precheck(p, f, mode, peerPub, peerErr)
		if err != nil {
			results[i] = refusal(f, err)
			continue
		}
		results[i].Hash = env.Hash[:]
		todo = append(todo, checked{i, env, sender})
	}
	valid := n.verifyAll(todo)
	for j, c := range todo {
		if !valid[j] {
			results[c.i] = refusal(frames[c.i], fmt.Errorf("%w: message from %s", identity.ErrBadSignature, c.env.From))
			continue
		}
		results[c.i] = n.deliver(ctx, p, c, mode)
	}
	return results
}

func refusal(frame []byte, err error) message.Result {
	h := hashOf(frame)
	return message.Result{Hash: h[:], Status: message.StatusOf(err), Reason: err.Error()}
}

func (n *Node) precheck(p peer.ID, f []byte, mode acceptMode, peerPub identity.PublicKey, peerErr error) (*message.Envelope, *message.Device, error) {
	src := p.String()
	if p == "" {
		src = "relayed"
	}
	if d := n.peerLimit.AllowMessage(src, len(f)); !d.Allowed {
		return nil, nil, fmt.Errorf("%w: %s (retry after %v)", message.ErrRateLimited, src, d.RetryAfter)
	}
	env, err := message.Decode(f)
	if err != nil {
		return nil, nil, err
	}
	if env.Chain != n.auth.ChainID() || env.To != n.id {
		return nil, nil, fmt.Errorf("%w: it is for %s on %s, this is %s on %s", message.ErrWrongReceiver, env.To, env.Chain, n.id, n.auth.ChainID())
	}
	sender, err := n.checkSender(env)
	if err != nil {
		return nil, nil, err
	}
	if mode == acceptDirect {
		if peerErr != nil || !peerPub.Equal(sender.Key) {
			return nil, nil, fmt.Errorf("%w: message from %s came over a connection of another key", message.ErrPeerMismatch, env.From)
		}
		n.rememberPeer(p, sender.ID)
	}
	if ok, err := n.auth.Granted(sender, env.Kind, "device:"+n.id); err != nil {
		return nil, nil, err
	} else if !ok {
		return nil, nil, fmt.Errorf("%w: %s may not send a %s to %s", message.ErrNotGranted, env.From, env.Kind, n.id)
	}
	if fresh, err := n.replay.Check(env.From, env.Seq); err != nil {
		return nil, nil, err
	} else if !fresh {
		return nil, nil, fmt.Errorf("%w: %d from %s", message.ErrReplay, env.Seq, env.From)
	}
	return env, sender, nil
}

// checkSender looks the sender up: registered and active.
func (n *Node) checkSender(env *message.Envelope) (*message.Device, error) {
	sender, err := n.auth.Device(env.From)
	if err != nil {
		return nil, err
	}
	if !sender.Active {
		return nil, fmt.Errorf("%w: %s", message.ErrInactiveSender, env.From)
	}
	return sender, nil
}

func (n *Node) verifyAll(todo []checked) []bool {
	valid := make([]bool, len(todo))
	if len(todo) == 1 {
		valid[0] = todo[0].env.Verify(todo[0].sender.Key) == nil
		return valid
	}
	b := identity.NewBatch(len(todo))
	for _, c := range todo {
		tbs, sig, err := c.env.Signature()
		if err != nil {
			sig = nil // verifies as false
		}
		b.Add(c.sender.Key, tbs, sig)
	}
	_, v := b.Verify()
	copy(valid, v)
	return valid
}

// deliver records the sequence number, opens the body and hands the
// message to the Handler.
func (n *Node) deliver(ctx context.Context, p peer.ID, c checked, mode acceptMode) message.Result {
	res := message.Result{Hash: c.env.Hash[:]}
	fail := func(err error) message.Result {
		res.Status, res.Reason = message.StatusOf(err), err.Error()
		return res
	}
	ok, err := n.replay.Accept(c.env.From, c.env.Seq)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return fail(fmt.Errorf("%w: %d from %s", message.ErrReplay, c.env.Seq, c.env.From))
	}
	pt, err := c.env.Open(n.cfg.Key)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", message.ErrUndecryptable, err))
	}
	via := "direct"
	if mode == acceptMailbox {
		via = "mailbox"
	}
	if n.cfg.Handler != nil {
		if err := n.cfg.Handler(ctx, &Delivery{Envelope: c.env, Sender: c.sender, Plaintext: pt, Peer: p, Via: via}); err != nil {
			return fail(fmt.Errorf("%w: %v", message.ErrRejected, err))
		}
	}
	n.stats.delivered.Add(1)
	return res
}

// session is an open stream to a peer for one protocol on which messages
// are pipelined: each receipt answers the oldest messages waiting.
type session struct {
	n      *Node
	proto  protocol.ID
	peer   peer.ID
	by     string // who signs the receipts
	byKey  identity.PublicKey
	s      network.Stream
	w      *bufio.Writer
	mu     sync.Mutex // writes and the queue
	queue  []chan sendResult
	closed error
	kick   chan struct{} // wakes the flusher
	done   chan struct{} // closed when the session ends
}

type sendResult struct {
	res message.Result
	err error
}

// sessionKey identifies a session.
type sessionKey struct {
	peer  peer.ID
	proto protocol.ID
}

// Send delivers a signed message to its receiver directly, over a stream
// kept open for further messages, and returns the receiver's signed result.
// The receiver must be reachable: connected, in the peerstore (mDNS, DHT,
// Connect) or through a relay address added with Connect.
func (n *Node) Send(ctx context.Context, env []byte) (*message.Result, error) {
	e, err := message.Decode(env)
	if err != nil {
		return nil, err
	}
	to, err := n.auth.Device(e.To)
	if err != nil {
		return nil, fmt.Errorf("mesh: receiver: %w", err)
	}
	pid, err := PeerID(to.Key)
	if err != nil {
		return nil, err
	}
	if err := n.locate(ctx, pid); err != nil {
		return nil, fmt.Errorf("mesh: cannot reach %s: %w", to.ID, err)
	}
	return n.exchange(ctx, pid, ProtoMessage, to.ID, to.Key, env)
}

// locate makes sure a peer can be dialled: connected, addresses known
// (mDNS, Connect, AddPeer), or found in the DHT.
func (n *Node) locate(ctx context.Context, p peer.ID) error {
	if len(n.host.Network().ConnsToPeer(p)) > 0 || len(n.host.Peerstore().Addrs(p)) > 0 {
		return nil
	}
	if n.dht == nil {
		return errors.New("not connected, no address known, and no DHT to look it up")
	}
	ai, err := n.dht.FindPeer(ctx, p)
	if err != nil {
		return fmt.Errorf("DHT lookup: %w", err)
	}
	n.host.Peerstore().AddAddrs(p, ai.Addrs, time.Hour)
	return nil
}

// exchange sends one frame on the session for (peer, proto) and waits
// for its result.
func (n *Node) exchange(ctx context.Context, p peer.ID, proto protocol.ID, by string, byKey identity.PublicKey, env []byte) (*message.Result, error) {
	s, err := n.session(ctx, p, proto, by, byKey)
	if err != nil {
		return nil, err
	}
	ch := make(chan sendResult, 1)
	s.mu.Lock()
	if s.closed != nil {
		s.mu.Unlock()
		n.dropSession(s)
		return n.exchangeRetry(ctx, p, proto, by, byKey, env, s.closed)
	}
	s.queue = append(s.queue, ch)
	err = writeFrame(s.w, env)
	s.mu.Unlock()
	if err != nil {
		s.fail(err)
	}
	select { // the flusher sends what has gathered, one write for many messages
	case s.kick <- struct{}{}:
	default:
	}
	n.stats.sent.Add(1)
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		h := hashOf(env)
		if string(r.res.Hash) != string(h[:]) {
			return nil, fmt.Errorf("mesh: receipt from %s answers another message", by)
		}
		return &r.res, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (n *Node) exchangeRetry(ctx context.Context, p peer.ID, proto protocol.ID, by string, byKey identity.PublicKey, env []byte, cause error) (*message.Result, error) {
	if ctx.Err() != nil {
		return nil, cause
	}
	return n.exchange(ctx, p, proto, by, byKey, env)
}

func (n *Node) session(ctx context.Context, p peer.ID, proto protocol.ID, by string, byKey identity.PublicKey) (*session, error) {
	k := sessionKey{p, proto}
	n.sessMu.Lock()
	if s, ok := n.sessions[k]; ok {
		n.sessMu.Unlock()
		return s, nil
	}
	n.sessMu.Unlock()
	st, err := n.host.NewStream(network.WithAllowLimitedConn(ctx, "thingnet messages"), p, proto)
	if err != nil {
		return nil, fmt.Errorf("mesh: opening a stream to %s (%s): %w", by, p, err)
	}
	s := &session{n: n, proto: proto, peer: p, by: by, byKey: byKey, s: st, w: bufio.NewWriterSize(st, 32<<10),
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	n.sessMu.Lock()
	if old, ok := n.sessions[k]; ok {
		n.sessMu.Unlock()
		st.Reset()
		return old, nil
	}
	n.sessions[k] = s
	n.sessMu.Unlock()
	n.wg.Add(2)
	go s.readReceipts()
	go s.flusher()
	return s, nil
}

// flusher writes out what senders have buffered each time it is woken:
// under load many messages go out in one write, and the receiver answers
// them with one receipt.
func (s *session) flusher() {
	defer s.n.wg.Done()
	for {
		select {
		case <-s.kick:
		case <-s.done:
			return
		}
		s.mu.Lock()
		err := s.w.Flush()
		s.mu.Unlock()
		if err != nil {
			s.fail(err)
			return
		}
	}
}

func (n *Node) dropSession(s *session) {
	n.sessMu.Lock()
	if n.sessions[sessionKey{s.peer, s.proto}] == s {
		delete(n.sessions, sessionKey{s.peer, s.proto})
	}
	n.sessMu.Unlock()
}

func (s *session) readReceipts() {
	defer s.n.wg.Done()
	r := bufio.NewReaderSize(s.s, 32<<10)
	for {
		f, err := readFrame(r, maxFrame)
		if err != nil {
			s.fail(fmt.Errorf("mesh: stream to %s closed: %w", s.by, err))
			return
		}
		rc, err := message.DecodeReceipt(f, s.by, s.byKey)
		if err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		if len(rc.Results) > len(s.queue) {
			s.mu.Unlock()
			s.fail(fmt.Errorf("mesh: %s answered %d messages, %d were sent", s.by, len(rc.Results), len(s.queue)))
			return
		}
		waiting := s.queue[:len(rc.Results)]
		s.queue = s.queue[len(rc.Results):]
		s.mu.Unlock()
		for i, ch := range waiting {
			ch <- sendResult{res: rc.Results[i]}
		}
	}
}

// fail ends the session: every message waiting gets err.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.closed == nil {
		s.closed = err
		close(s.done)
	}
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	s.n.dropSession(s)
	s.s.Reset()
	for _, ch := range q {
		ch <- sendResult{err: err}
	}
}

// rememberPeer notes which device a peer is (after a verified direct
// message or a check against the ledger), for relay and topic checks of
// devices whose key was rotated.
func (n *Node) rememberPeer(p peer.ID, device string) {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	if len(n.peerDevices) > 100_000 {
		clear(n.peerDevices)
	}
	n.peerDevices[p] = device
}

func (n *Node) knownPeerDevice(p peer.ID) (*message.Device, error) {
	n.peersMu.Lock()
	id, ok := n.peerDevices[p]
	n.peersMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: peer %s", message.ErrUnknownSender, p)
	}
	return n.auth.Device(id)
}
