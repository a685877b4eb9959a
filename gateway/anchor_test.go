package gateway

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

func TestAnchorCadenceDue(t *testing.T) {
	c := anchorCadence{interval: time.Minute, budget: 1000}
	const anchor = 800 * budgetEntries // the balance one 800-byte anchor takes
	for _, tc := range []struct {
		name string
		b    anchorBacklog
		want bool
	}{
		{"nothing new", anchorBacklog{entries: 0, txBytes: 800, waited: time.Hour, idle: time.Hour}, false},
		{"not paid, not waited, busy", anchorBacklog{entries: 7_999, txBytes: 800, waited: 59 * time.Second}, false},
		{"paid exactly", anchorBacklog{entries: 8_000, txBytes: 800}, true},
		{"a byte more than paid for", anchorBacklog{entries: 8_000, txBytes: 801}, false},
		{"paid by the balance saved", anchorBacklog{entries: 4_000, txBytes: 800, balance: anchor / 2}, true},
		{"a debt to repay first", anchorBacklog{entries: 8_000, txBytes: 800, balance: -1}, false},
		{"the interval is the upper bound", anchorBacklog{entries: 1, txBytes: 800, waited: time.Minute, balance: -anchor}, true},
		{"idle: on credit", anchorBacklog{entries: 10, txBytes: 800, idle: anchorIdle}, true},
		{"idle, but not long enough", anchorBacklog{entries: 10, txBytes: 800, idle: anchorIdle - time.Millisecond}, false},
		{"idle, in debt already", anchorBacklog{entries: 10, txBytes: 800, idle: time.Hour, balance: -anchor / 2}, false},
		{"idle, the debt repaid enough", anchorBacklog{entries: 4_000, txBytes: 800, idle: time.Hour, balance: -anchor / 2}, true},
		{"no overflow at large sizes", anchorBacklog{entries: 1 << 40, txBytes: 1 << 20}, true},
	} {
		if got := c.due(tc.b); got != tc.want {
			t.Errorf("%s: due(%+v) = %v; want %v", tc.name, tc.b, got, tc.want)
		}
	}
	off := anchorCadence{interval: time.Second, budget: -1}
	if off.due(anchorBacklog{entries: 1 << 40, txBytes: 100, waited: 999 * time.Millisecond, idle: time.Hour}) {
		t.Errorf("with no budget, an anchor was due before the interval")
	}
	if !off.due(anchorBacklog{entries: 1, txBytes: 100, waited: time.Second}) {
		t.Errorf("with no budget, an anchor was not due at the interval")
	}
	// The balance stays within one anchor of zero either side.
	for _, tc := range []struct {
		b    anchorBacklog
		want int64
	}{
		{anchorBacklog{entries: 8_000, txBytes: 800}, 0},
		{anchorBacklog{entries: 8_100, txBytes: 800}, 100 * 1000},
		{anchorBacklog{entries: 1 << 30, txBytes: 800}, anchor},
		{anchorBacklog{entries: 1, txBytes: 800, balance: -anchor}, -anchor},
	} {
		if got := c.sent(tc.b); got != tc.want {
			t.Errorf("sent(%+v) = %d; want %d", tc.b, got, tc.want)
		}
	}
}

// anchorTxSize is the size of the gateway's anchor tx of a log grown from
// size from to size to: a real tx, signed, with a consistency proof of the
// length RFC 6962 gives (its hashes' values do not change the size).
func anchorTxSize(t testing.TB, key *identity.Key, chainID string, from, to, nonce, expiry uint64) int {
	t.Helper()
	m := &record.DataAnchor{Size: to, Root: make([]byte, 32)}
	if from > 0 {
		nodes, err := proof.Consistency(from, to)
		if err != nil {
			t.Fatal(err)
		}
		hs := make([][]byte, len(nodes.IDs))
		for i := range hs {
			hs[i] = make([]byte, 32)
		}
		p, err := nodes.Rehash(hs, func(l, _ []byte) []byte { return l })
		if err != nil {
			t.Fatal(err)
		}
		m.Consistency = p
	}
	tx, err := record.NewTx(key, key.ID(), chainID, nonce, int64(expiry), m)
	if err != nil {
		t.Fatal(err)
	}
	return len(tx)
}

// anchorSim is the result of simulate.
type anchorSim struct {
	anchors, bytes int
	entries        uint64        // anchored
	meanWait       time.Duration // of an entry, from its arrival to its anchor's commit
	maxWait        time.Duration
	viaInterval    int // anchors that went out because the interval was reached
}

// simulate drives anchorCadence on virtual time as the duty loop does: a
// look every dutyPoll; the anchor sent is committed one block later, and
// entries that arrive meanwhile wait for the next one; tx sizes are real.
// size(at) is the log's size at virtual time at; the run lasts run and
// then as long as entries wait.
func simulate(t *testing.T, key *identity.Key, c anchorCadence, size func(at time.Duration) uint64, run time.Duration) anchorSim {
	t.Helper()
	const block = 150 * time.Millisecond // FastBlocks on this machine: 100–200 ms
	var (
		r                     anchorSim
		now, commitAt, grewAt time.Duration
		oldest                = time.Duration(-1)
		anchored, inflight    uint64
		seen                  uint64
		balance               int64
		waitSum               float64
	)
	// arrival is when entry i arrived (the first at which size exceeds i).
	arrival := func(i uint64) time.Duration {
		lo, hi := time.Duration(0), now
		for hi-lo > time.Millisecond {
			mid := (lo + hi) / 2
			if size(mid) > i {
				hi = mid
			} else {
				lo = mid
			}
		}
		return hi
	}
	for ; now <= run || anchored < size(run); now += dutyPoll {
		n := size(min(now, run))
		if inflight > 0 {
			if now < commitAt {
				continue
			}
			for _, i := range []uint64{anchored, (anchored + inflight) / 2, inflight - 1} {
				w := commitAt - arrival(i)
				r.maxWait = max(r.maxWait, w)
				if i == (anchored+inflight)/2 {
					waitSum += float64(inflight-anchored) * w.Seconds()
				}
			}
			r.entries += inflight - anchored
			anchored, inflight = inflight, 0
		}
		if n <= anchored {
			oldest = -1
			continue
		}
		if oldest < 0 {
			oldest = now
		}
		if n != seen {
			seen, grewAt = n, now
		}
		// A chain of ~10 s blocks a year old: nonces and heights of 3–4 bytes.
		b := anchorBacklog{entries: n - anchored, txBytes: anchorTxSize(t, key, "thingnet-1", anchored, n, uint64(r.anchors)+1000, 3_000_000),
			waited: now - oldest, idle: now - grewAt, balance: balance}
		if !c.due(b) {
			continue
		}
		if b.waited >= c.interval {
			r.viaInterval++
		}
		balance = c.sent(b)
		r.anchors, r.bytes, inflight, commitAt, oldest = r.anchors+1, r.bytes+b.txBytes, n, now+block, now
	}
	if r.entries > 0 {
		r.meanWait = time.Duration(waitSum / float64(r.entries) * float64(time.Second))
	}
	return r
}

// TestAnchorCadenceRates simulates a gateway at steady rates from 100 to
// 60,000 entries/s for ten minutes each, and one taking bursts with
// silences between them, with a 2-minute interval (chain growth first; the
// default, 1 s, puts latency first). At every steady rate the anchors'
// bytes stay within the default budget per 10,000 entries, and no anchor
// waits for the interval; above ~15,000/s an entry waits under half a second for its
// anchor. The end of a burst is anchored on credit within half a second.
// It logs the tables docs/readings.md quotes.
func TestAnchorCadenceRates(t *testing.T) {
	key := testutil.Key(t, identity.Ed25519)
	c := anchorCadence{interval: 2 * time.Minute, budget: DefaultAnchorBudget}
	t.Logf("%8s %8s %12s %14s %12s %12s", "rate/s", "anchors", "bytes/anchor", "bytes per 10k", "mean wait", "max wait")
	for _, rate := range []uint64{100, 1_000, 10_000, 20_000, 60_000} {
		const run = 10 * time.Minute
		r := simulate(t, key, c, func(at time.Duration) uint64 { return uint64(at) * rate / uint64(time.Second) }, run)
		// What an ongoing stream spends: the anchors of the run but its
		// last, which the stream's end sent on credit.
		steady := float64(r.bytes-r.bytes/r.anchors) / float64(run.Seconds()*float64(rate)) * budgetEntries
		t.Logf("%8d %8d %12d %14.0f %12v %12v", rate, r.anchors, r.bytes/r.anchors, steady, r.meanWait.Round(time.Millisecond), r.maxWait.Round(time.Millisecond))
		if steady > DefaultAnchorBudget {
			t.Errorf("%d entries/s: %.0f bytes of anchors per 10,000 entries; want ≤ %d", rate, steady, DefaultAnchorBudget)
		}
		if r.viaInterval > 0 {
			t.Errorf("%d entries/s: %d anchors went out at the interval, not paid for", rate, r.viaInterval)
		}
		if rate >= 20_000 && r.meanWait > 500*time.Millisecond {
			t.Errorf("%d entries/s: entries wait %v on average for their anchor; want ≤ 500ms", rate, r.meanWait)
		}
	}

	// Bursts: 20,000 entries at 20,000/s, then 9 s of silence, for ten
	// minutes (2,000 entries/s on average).
	const run = 10 * time.Minute
	burst := func(at time.Duration) uint64 {
		k, in := at/(10*time.Second), min(at%(10*time.Second), time.Second)
		return uint64(k)*20_000 + uint64(in)*20_000/uint64(time.Second)
	}
	r := simulate(t, key, c, burst, run)
	per10k := float64(r.bytes) / float64(r.entries) * budgetEntries
	t.Logf("bursts of 20,000 every 10 s: %d anchors, %.0f bytes per 10k, mean wait %v, max wait %v", r.anchors, per10k, r.meanWait.Round(time.Millisecond), r.maxWait.Round(time.Millisecond))
	// The budget, plus one anchor lent at the end of each burst and
	// repaid in the next: within one anchor per burst over the run.
	if bound := DefaultAnchorBudget + float64(r.bytes/r.anchors)*float64(run/(10*time.Second))/float64(r.entries)*budgetEntries; per10k > bound {
		t.Errorf("bursts: %.0f bytes per 10,000 entries; want ≤ %.0f", per10k, bound)
	}
	if r.maxWait > 2*time.Second {
		t.Errorf("bursts: an entry waited %v for its anchor; want the end of a burst anchored on credit", r.maxWait)
	}
	if r.viaInterval > 0 {
		t.Errorf("bursts: %d anchors went out at the interval", r.viaInterval)
	}
}

// failLedger fails the submission of the first anchor tx (as a node that
// refuses it at the door), or loses it (as a mempool that drops it), and
// counts the anchor txs submitted.
type failLedger struct {
	NodeLedger
	fail, drop atomic.Bool
	anchors    atomic.Int64
}

func (l *failLedger) Submit(ctx context.Context, tx []byte) error {
	if isAnchor(tx) {
		if l.fail.CompareAndSwap(true, false) {
			return errors.New("test: the node is busy")
		}
		if l.drop.CompareAndSwap(true, false) {
			return nil
		}
		l.anchors.Add(1)
	}
	return l.NodeLedger.Submit(ctx, tx)
}

func isAnchor(raw []byte) bool {
	tx, err := record.DecodeTx(raw)
	return err == nil && tx.Msg.Kind() == record.KindDataAnchor
}

// TestAnchorOnBudget, on a real one-validator network, with an interval of
// an hour (so every anchor here is the budget's): a few entries are
// anchored on credit once the log is idle; a few more, with that debt not
// repaid, stay unanchored while blocks go by; entries that repay it are
// anchored. An anchor whose submission fails is sent again, one lost on
// the way is sent again after TxResubmit; no anchor is sent while another
// is in flight, and none twice.
func TestAnchorOnBudget(t *testing.T) {
	tn := startTestNet(t)
	tn.gw.Close()
	l := &failLedger{NodeLedger: NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()}}
	// 10 bytes per entry: an anchor (250–400 bytes here) is paid by 25–40
	// entries.
	gw, err := New(Config{Dir: filepath.Join(tn.dir, "budget"), Key: tn.gwKey, AnchorInterval: time.Hour, AnchorBudget: 100_000,
		TxResubmit: time.Second, NoSync: true, Limits: wideLimits}, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	ctx := testutil.Context(t, 2*time.Minute)
	seq := uint64(0)
	ingest := func(n int) {
		t.Helper()
		for range n {
			seq++
			raw, err := reading.Sign(tn.sensor, tn.sensor.ID(), temp(seq, 20))
			if err != nil {
				t.Fatal(err)
			}
			if err := gw.Ingest(ctx, "", raw, "127.0.0.1"); err != nil {
				t.Fatalf("entry %d: %v", seq, err)
			}
		}
	}
	anchored := func() uint64 {
		t.Helper()
		st, err := tn.app.View(0)
		if err != nil {
			t.Fatal(err)
		}
		a, err := gw.anchored(st)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	// waitAnchored waits until the whole log is anchored and returns how
	// long that took.
	waitAnchored := func(what string) time.Duration {
		t.Helper()
		start, size := time.Now(), gw.Log().Size()
		for anchored() < size {
			select {
			case <-ctx.Done():
				t.Fatalf("%s: size %d never anchored (anchored: %d)", what, size, anchored())
			case <-time.After(10 * time.Millisecond):
			}
		}
		return time.Since(start)
	}

	ingest(5)
	t.Logf("5 entries, then idle: anchored on credit after %v", waitAnchored("on credit").Round(time.Millisecond))

	// Five more do not repay the debt: they wait while the chain moves on
	// (five blocks, and twice the idle time: far more than the duty loop
	// needs to look).
	ingest(5)
	for h, start := tn.app.Height()+5, time.Now(); ; h = tn.app.Height() + 1 {
		if err := tn.net.WaitForHeight(ctx, h); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) >= 2*anchorIdle {
			break
		}
	}
	if a := anchored(); a != 5 {
		t.Fatalf("anchored %d entries; want the first 5 only, the debt of their anchor unpaid", a)
	}
	ingest(60)
	t.Logf("60 entries more: repaid and anchored after %v", waitAnchored("repaid").Round(time.Millisecond))

	l.fail.Store(true)
	ingest(60)
	t.Logf("an anchor whose submission failed: committed after %v (retry after %v)", waitAnchored("failed").Round(time.Millisecond), dutyRound)
	if l.fail.Load() {
		t.Fatal("no anchor's submission failed")
	}
	l.drop.Store(true)
	ingest(60)
	t.Logf("a lost anchor: committed after %v (TxResubmit %v)", waitAnchored("lost").Round(time.Millisecond), time.Second)
	if l.drop.Load() {
		t.Fatal("no anchor was lost")
	}

	// A burst: anchors go out one per block at most, never the same size
	// twice, and the end of it on credit.
	before := l.anchors.Load()
	ingest(200)
	waitAnchored("burst")
	sent := l.anchors.Load() - before
	if n := tn.app.Rejections()["bad_nonce"]; n != 0 {
		t.Errorf("%d txs refused for their nonce: an anchor was sent while another was in flight", n)
	}
	sizes := anchorSizes(t, tn)
	if !slices.IsSorted(sizes) || len(slices.Compact(slices.Clone(sizes))) != len(sizes) {
		t.Errorf("anchored sizes %v: want strictly increasing (no anchor twice)", sizes)
	}
	t.Logf("200 entries in a burst: %d anchor txs; anchored sizes: %v", sent, sizes)
}

// anchorSizes is the sizes of the gateway's anchor txs in the committed
// blocks, in order.
func anchorSizes(t *testing.T, tn *testNet) []uint64 {
	t.Helper()
	ctx := testutil.Context(t, time.Minute)
	var sizes []uint64
	c := tn.net.Node(0).Client()
	for h := int64(1); h <= tn.app.Height(); h++ {
		b, err := c.Block(ctx, &h)
		if err != nil {
			t.Fatal(fmt.Errorf("block %d: %w", h, err))
		}
		for _, raw := range b.Block.Txs {
			tx, err := record.DecodeTx(raw)
			if err != nil || tx.Signer != tn.gwKey.ID() {
				continue
			}
			if a, ok := tx.Msg.(*record.DataAnchor); ok {
				sizes = append(sizes, a.Size)
			}
		}
	}
	return sizes
}
