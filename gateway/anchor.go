package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/thingnet/thingnet/gateway/edge"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// txResubmit is how long a gateway tx may stay uncommitted before the
// gateway sends another; Config.TxResubmit overrides it.
const txResubmit = 30 * time.Second

// dutyPoll is how often the duty loop looks for its pending tx's commit
// and for an anchor the budget has paid for, so that queued messages and
// anchors go out one block after another, not one per AnchorInterval.
const dutyPoll = 50 * time.Millisecond

// dutyRound bounds how long the duty loop waits between quarantine checks
// and after a failed submission, however long AnchorInterval is.
const dutyRound = time.Second

// The defaults of Config.AnchorInterval and Config.AnchorBudget. With
// anchor txs of 700–900 bytes the budget pays for one anchor per 7,000–
// 9,000 entries. The default interval favours latency: every entry is
// anchored within about a second, and the budget sends anchors earlier
// only above ~8,000 entries/s; a gateway that must hold its chain growth
// to the budget at every rate from ~75 entries/s sets an interval of
// minutes (docs/readings.md, "Anchoring cadence") — both at once cannot
// hold below ~12,500 entries/s.
const (
	DefaultAnchorInterval = time.Second
	DefaultAnchorBudget   = 1000
)

// budgetEntries is the number of log entries an anchor budget is counted
// per (Config.AnchorBudget: bytes of chain per 10,000 entries).
const budgetEntries = 10_000

// anchorIdle is how long the log must not grow, after new entries, for an
// anchor to go out on credit (anchorCadence). Long enough that a stall of
// a busy gateway is not taken for the end of a burst: a loan repaid by a
// steady stream delays its next anchor by as much as it saved.
const anchorIdle = time.Second

// anchorCadence decides when the duty loop anchors the data log. It keeps
// a balance, in bytes × 10,000: every new entry an anchor covers adds the
// budget, every anchor sent takes its size × 10,000 (the gateway builds the
// tx, so its size is known). An anchor goes out
//
//   - as soon as the balance pays for it (the count trigger: with ~800-byte
//     anchors and the default budget, every ~8,000 entries);
//   - when the log has been idle for anchorIdle after new entries, on
//     credit: if the balance stays above minus one anchor afterwards (the
//     end of a burst is anchored at once; the next anchor repays it);
//   - when the oldest unanchored entry has waited the interval, whatever
//     the balance (the upper bound).
//
// The balance is kept within one anchor either side, so neither a debt
// nor a saving outlives a burst. It is a pure rule: time is an input.
type anchorCadence struct {
	interval time.Duration
	budget   int // bytes of chain per budgetEntries entries; ≤ 0: anchors only every interval
}

// anchorBacklog is what anchorCadence decides on.
type anchorBacklog struct {
	entries uint64        // new entries the anchor would cover
	txBytes int           // its size
	waited  time.Duration // since the oldest of them was seen
	idle    time.Duration // since the log last grew
	balance int64         // the budget's balance before this anchor, bytes × budgetEntries
}

// after is the balance once an anchor is sent for b, unclamped.
func (c anchorCadence) after(b anchorBacklog) int64 {
	return b.balance + int64(b.entries)*int64(max(c.budget, 0)) - int64(b.txBytes)*budgetEntries
}

// due reports whether the anchor of b goes out now.
func (c anchorCadence) due(b anchorBacklog) bool {
	if b.entries == 0 {
		return false
	}
	if b.waited >= c.interval {
		return true
	}
	if c.budget <= 0 {
		return false
	}
	a := c.after(b)
	return a >= 0 || b.idle >= anchorIdle && a >= -int64(b.txBytes)*budgetEntries
}

// sent is the balance after the anchor of b went out: kept within one
// anchor of zero.
func (c anchorCadence) sent(b anchorBacklog) int64 {
	limit := int64(b.txBytes) * budgetEntries
	return min(max(c.after(b), -limit), limit)
}

// queued is a ledger message another component asked the gateway to send
// with its key (Enqueue).
type queued struct {
	m    record.Msg
	done func(error)
}

func (q *queued) finish(err error) {
	if q.done != nil {
		q.done(err)
	}
}

// Enqueue hands the gateway a ledger message to sign with its key and send
// (file.pin and the like): the gateway key has one nonce sequence, so every
// tx signed with it goes out through the duty loop, one at a time, after
// the quarantines and anchors it has to send. done (may be nil) is called
// once: with nil when the tx holding m is committed (executed, so its nonce
// is used; its result is in the block), or with the reason m was dropped —
// the ledger refused it as invalid, or the gateway closed. A tx that is not
// committed within the resubmit time is sent again, m included. m is
// checked (ValidateBasic) before it is queued; a full queue answers
// ErrQueueFull and queues nothing.
func (g *Gateway) Enqueue(m record.Msg, done func(error)) error {
	if err := m.ValidateBasic(); err != nil {
		return fmt.Errorf("gateway: %s: %w", m.Kind(), err)
	}
	g.txMu.Lock()
	defer g.txMu.Unlock()
	if g.txClosed {
		return ErrClosed
	}
	if len(g.txq) >= g.cfg.TxQueueLen {
		return fmt.Errorf("%w: %d ledger messages wait to be sent (gateway.Config.TxQueueLen)", ErrQueueFull, len(g.txq))
	}
	g.txq = append(g.txq, &queued{m: m, done: done})
	select {
	case g.txWake <- struct{}{}:
	default:
	}
	return nil
}

// Queued is the number of messages waiting in the tx queue.
func (g *Gateway) Queued() int {
	g.txMu.Lock()
	defer g.txMu.Unlock()
	return len(g.txq)
}

func (g *Gateway) popQueued() *queued {
	g.txMu.Lock()
	defer g.txMu.Unlock()
	if len(g.txq) == 0 {
		return nil
	}
	q := g.txq[0]
	g.txq[0] = nil
	g.txq = g.txq[1:]
	return q
}

// requeue puts q back at the head of the queue (its tx was not committed
// or not accepted): nothing queued is lost across a resubmit.
func (g *Gateway) requeue(q *queued) {
	g.txMu.Lock()
	defer g.txMu.Unlock()
	g.txq = append([]*queued{q}, g.txq...)
}

// closeQueue answers every message still queued with ErrClosed.
func (g *Gateway) closeQueue(inflight *queued) {
	g.txMu.Lock()
	q := g.txq
	g.txq, g.txClosed = nil, true
	g.txMu.Unlock()
	if inflight != nil {
		inflight.finish(fmt.Errorf("%w before its tx was committed", ErrClosed))
	}
	for _, m := range q {
		m.finish(ErrClosed)
	}
}

// duty is the duty loop's state.
type duty struct {
	pendingNonce uint64    // nonce of the tx sent and not yet seen committed (0: none)
	pendingSince time.Time // when it was sent
	inflight     *queued   // the queued message that tx holds, if any
	lastAnchor   bool      // the last tx sent was an anchor
	lastRound    time.Time // the last quarantine check
	retryAt      time.Time // after a refused or failed submission: wait until then

	// oldest is when the duty loop first saw log entries that no anchor
	// (committed or in flight) covers; zero: none seen. Sending an anchor
	// keeps the previous value in sentOldest and its size in sentSize, so
	// that an anchor that fails is retried as soon as that one is due.
	oldest, sentOldest time.Time
	sentSize           uint64
	// seenSize is the log's size the duty loop last saw, grewAt when it
	// saw it grow; balance is anchorCadence's, sentBalance what it becomes
	// once the anchor anchorTx built is sent.
	seenSize             uint64
	grewAt               time.Time
	balance, sentBalance int64
}

// duties runs the gateway's ledger work, one tx at a time (they share the
// gateway key's nonce): every AnchorInterval (at most every second) it
// quarantines devices that keep exceeding their limits, where an
// organisation's policy allows it; it anchors the data log when the new
// entries pay for an anchor under AnchorBudget, when the log went idle and
// the budget can lend it, or when the oldest entry has waited
// AnchorInterval (anchorCadence); in between it sends the
// messages other components queued (Enqueue). Priority: quarantine,
// anchor, queued — but with messages waiting, two anchors never go in a
// row, so a busy log does not starve the queue. One tx is in flight at a
// time, so an anchor is never sent twice unless it was not committed
// within TxResubmit.
func (g *Gateway) duties(ctx context.Context) {
	defer g.wg.Done()
	t := time.NewTicker(min(g.cfg.AnchorInterval, dutyPoll))
	defer t.Stop()
	var d duty
	var lastErr string
	defer func() { g.closeQueue(d.inflight) }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.txWake:
		}
		err := g.dutyOnce(ctx, &d)
		if errors.Is(err, ledger.ErrNoState) {
			continue // the node is starting: no block committed yet
		}
		if err != nil {
			d.retryAt = time.Now().Add(min(g.cfg.AnchorInterval, dutyRound))
			if err.Error() != lastErr {
				g.log.Warn("gateway ledger duty", "err", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
	}
}

// dutyOnce submits at most one tx.
func (g *Gateway) dutyOnce(ctx context.Context, d *duty) error {
	st, err := g.ledger.View()
	if err != nil {
		return err
	}
	last, err := st.Nonce(g.id)
	if err != nil {
		return err
	}
	now := time.Now()
	if d.pendingNonce > last {
		if now.Sub(d.pendingSince) < g.cfg.TxResubmit {
			return nil // our previous tx is not committed yet
		}
		// Not committed in time (dropped from the mempool, or expired):
		// what it held is sent again.
		g.log.Warn("gateway tx not committed; sending again", "nonce", d.pendingNonce, "after", now.Sub(d.pendingSince))
		if d.inflight != nil {
			g.requeue(d.inflight)
		}
		if d.lastAnchor {
			d.oldest = d.sentOldest // due again at once
		}
	} else if d.inflight != nil {
		d.inflight.finish(nil)
	}
	d.pendingNonce, d.inflight = 0, nil
	if now.Before(d.retryAt) {
		return nil
	}
	var m record.Msg
	var tx []byte
	if now.Sub(d.lastRound) >= min(g.cfg.AnchorInterval, dutyRound) {
		d.lastRound = now
		if m, err = g.quarantineMsg(st); err != nil {
			return err
		}
	}
	anchor := false
	if m == nil && !(d.lastAnchor && g.Queued() > 0) {
		if tx, err = g.anchorTx(st, d, last+1, now); err != nil {
			return err
		}
		anchor = tx != nil
	}
	var q *queued
	if m == nil && tx == nil {
		if q = g.popQueued(); q == nil {
			return nil
		}
		m = q.m
	}
	kind := record.KindDataAnchor
	if !anchor {
		kind = m.Kind()
		tx, err = record.NewTx(g.cfg.Key, g.id, g.ledger.ChainID(), last+1, st.Height+20, m)
	}
	if err == nil {
		err = g.ledger.Submit(ctx, tx)
	}
	if err != nil {
		if q != nil {
			if refused(err) {
				q.finish(fmt.Errorf("gateway: the ledger refused %s: %w", kind, err))
			} else {
				g.requeue(q)
			}
		}
		return fmt.Errorf("%s: %w", kind, err)
	}
	if anchor {
		// Entries appended from now on are not covered by this anchor. Its
		// bytes are spent now: if it fails, it still took room in a block.
		d.sentOldest, d.oldest, d.balance = d.oldest, now, d.sentBalance
	}
	d.pendingNonce, d.pendingSince, d.inflight, d.lastAnchor = last+1, now, q, anchor
	return nil
}

// anchorTx is the signed anchor tx (nonce nonce) of the log's current size,
// if the log grew past the last anchored size and anchorCadence says it is
// due; nil otherwise.
func (g *Gateway) anchorTx(st *ledger.State, d *duty, nonce uint64, now time.Time) ([]byte, error) {
	size, root := g.data.Root()
	anchored, err := g.anchored(st)
	if err != nil {
		return nil, err
	}
	if size <= anchored {
		d.oldest = time.Time{}
		return nil, nil
	}
	if d.sentSize > anchored && d.lastAnchor {
		// The last anchor was committed but did not take (its tx failed):
		// what it covered has waited since before it was sent.
		d.oldest = d.sentOldest
	}
	if d.oldest.IsZero() {
		d.oldest = now
	}
	if size != d.seenSize {
		d.seenSize, d.grewAt = size, now
	}
	c := anchorCadence{interval: g.cfg.AnchorInterval, budget: g.cfg.AnchorBudget}
	b := anchorBacklog{entries: size - anchored, txBytes: minAnchorTx, waited: now.Sub(d.oldest), idle: now.Sub(d.grewAt), balance: d.balance}
	// An anchor costs at least its fixed part (~230 bytes): skip building
	// one that would not be due at that size.
	if !c.due(b) {
		return nil, nil
	}
	m, err := g.anchorMsg(size, root, anchored)
	if err != nil {
		return nil, err
	}
	tx, err := record.NewTx(g.cfg.Key, g.id, g.ledger.ChainID(), nonce, st.Height+20, m)
	if err != nil {
		return nil, err
	}
	if b.txBytes = len(tx); !c.due(b) {
		return nil, nil
	}
	d.sentSize, d.sentBalance = size, c.sent(b)
	return tx, nil
}

// minAnchorTx is less than any anchor tx's size: its envelope, signature,
// signer and root without a consistency proof.
const minAnchorTx = 200

// refused reports whether the ledger refused a tx for its message (sending
// it again would not help), as opposed to its envelope (nonce, expiry) or
// the transport.
func refused(err error) bool {
	var e *record.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case record.CodeMalformed, record.CodeTooLarge, record.CodeUnknownKind, record.CodeInvalid, record.CodeUnauthorized:
		return true
	}
	return false
}

// anchored is the log size the ledger holds anchored for this gateway (0
// before its first anchor).
func (g *Gateway) anchored(st *ledger.State) (uint64, error) {
	a, err := st.Anchor(g.id)
	switch {
	case err == nil:
		return a.Size, nil
	case errors.Is(err, ledger.ErrNotFound):
		return 0, nil
	}
	return 0, err
}

// anchorMsg is the anchor of the log at size (> anchored) and root, with
// its consistency proof to the anchored size.
func (g *Gateway) anchorMsg(size uint64, root [32]byte, anchored uint64) (record.Msg, error) {
	m := &record.DataAnchor{Size: size, Root: root[:]}
	if anchored > 0 {
		p, err := g.data.ConsistencyProof(anchored, size)
		if err != nil {
			return nil, err
		}
		for _, h := range p {
			m.Consistency = append(m.Consistency, h[:])
		}
	}
	return m, nil
}

// Quarantine policy: a device refused this many times within this window
// is an offender.
const (
	OffenderThreshold = 20
	OffenderWindow    = time.Minute
)

// quarantineMsg picks an offending device to suspend: one still active,
// whose organisation has granted this gateway "manage" on it (its policy:
// "let our gateways quarantine our devices"). Offenders without such a
// policy are only reported (logged and counted); they stay candidates for
// OffenderWindow, in case the policy arrives meanwhile.
func (g *Gateway) quarantineMsg(st *ledger.State) (record.Msg, error) {
	for _, o := range g.limiter.Offenders(OffenderThreshold, OffenderWindow) {
		id, ok := edge.DeviceOf(o.Key)
		if !ok {
			continue // a source address: refused at the edge, nothing on chain to do
		}
		g.log.Warn("device keeps exceeding its limits", "device", id, "violations", o.Violations, "since", o.Since)
		g.stats.offenders.Add(1)
		g.offMu.Lock()
		if len(g.offenders) >= g.cfg.MaxKeys {
			clear(g.offenders)
		}
		g.offenders[id] = offender{violations: o.Violations, reported: g.clock.Now()}
		g.offMu.Unlock()
	}
	g.offMu.Lock()
	defer g.offMu.Unlock()
	now := g.clock.Now()
	for id, o := range g.offenders {
		if now.Sub(o.reported) >= OffenderWindow {
			delete(g.offenders, id)
			continue
		}
		d, err := st.Device(id)
		if err != nil || d.Status != record.StatusActive {
			delete(g.offenders, id)
			continue
		}
		allowed, err := st.HasGrant("device:"+g.id, record.ActionManage, []string{"device:" + id, "org:" + d.Org}, st.Height+1)
		if err != nil {
			return nil, err
		}
		if allowed {
			delete(g.offenders, id) // one try; it is reported again if it goes on
			return record.NewDeviceStatus(id, record.StatusSuspended,
				fmt.Sprintf("quarantined by gateway %s: %d limit violations within %v", g.id, o.violations, OffenderWindow)), nil
		}
	}
	return nil, nil
}

// offender is a device reported for exceeding its limits.
type offender struct {
	violations int
	reported   time.Time
}
