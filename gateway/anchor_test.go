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
	for _, tc := range []struct {
		entries uint64
		bytes   int
		waited  time.Duration
		want    bool
	}{
		{0, 800, time.Hour, false},                    // nothing new
		{7_999, 800, 59 * time.Second, false},         // not paid, not waited
		{8_000, 800, 0, true},                         // paid: 8,000 × 1,000 = 800 × 10,000
		{1, 800, time.Minute, true},                   // the interval is the upper bound
		{100_000, 800, 0, true},                       // paid many times over
		{1, 0, 0, true},                               // free (not a real tx: the rule's edge)
		{8_000, 801, 0, false},                        // a byte more than paid for
		{1 << 40, 1 << 20, 0, true},                   // no overflow at large sizes
		{16, 200, 30 * time.Second, false},            // a few entries wait
		{2_000, minAnchorTx, 10 * time.Second, true},  // the cheapest anchor
		{1_999, minAnchorTx, 10 * time.Second, false}, // just under it
	} {
		if got := c.due(tc.entries, tc.bytes, tc.waited); got != tc.want {
			t.Errorf("due(%d entries, %d bytes, waited %v) = %v; want %v", tc.entries, tc.bytes, tc.waited, got, tc.want)
		}
	}
	off := anchorCadence{interval: time.Second, budget: -1}
	if off.due(1<<40, 100, 999*time.Millisecond) {
		t.Errorf("with no budget, an anchor was due before the interval")
	}
	if !off.due(1, 100, time.Second) {
		t.Errorf("with no budget, an anchor was not due at the interval")
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

// TestAnchorCadenceRates drives the cadence on virtual time as the duty
// loop does (a look every dutyPoll; the anchor sent is committed one block
// later; entries that arrive meanwhile wait for the next one), with real
// anchor tx sizes, at steady rates from 100 to 60,000 entries/s for ten
// minutes each. At every rate the anchors' bytes stay within the default
// budget per 10,000 entries; above ~16,000/s the wait for an anchor is
// under half a second. It logs the table docs/readings.md quotes.
func TestAnchorCadenceRates(t *testing.T) {
	const (
		run   = 10 * time.Minute
		block = 150 * time.Millisecond // FastBlocks on this machine: 100–200 ms
	)
	key := testutil.Key(t, identity.Ed25519)
	c := anchorCadence{interval: DefaultAnchorInterval, budget: DefaultAnchorBudget}
	t.Logf("%8s %8s %12s %14s %12s", "rate/s", "anchors", "bytes/anchor", "bytes per 10k", "mean wait")
	for _, rate := range []uint64{100, 1_000, 10_000, 20_000, 60_000} {
		var (
			now, oldest, commitAt time.Duration
			size, anchored        uint64
			inflight              uint64 // size of the anchor in flight (0: none)
			anchors, bytes        int
			waitSum               float64 // entry-seconds from arrival to commit
			anchoredEntries       uint64
		)
		arrival := func(i uint64) time.Duration { return time.Duration(i) * time.Second / time.Duration(rate) }
		for ; now <= run; now += dutyPoll {
			size = uint64(now) * rate / uint64(time.Second)
			if inflight > 0 {
				if now < commitAt {
					continue
				}
				// The entries it covers waited from arrival to the commit;
				// their mean arrival is that of the middle one.
				mid := arrival((anchored + inflight) / 2)
				waitSum += float64(inflight-anchored) * (commitAt - mid).Seconds()
				anchoredEntries += inflight - anchored
				anchored, inflight = inflight, 0
			}
			if size <= anchored {
				oldest = -1
				continue
			}
			if oldest < 0 {
				oldest = now
			}
			// A chain of ~10 s blocks a year old: nonces and heights of 3–4 bytes.
			n := anchorTxSize(t, key, "thingnet-1", anchored, size, uint64(anchors)+1000, 3_000_000)
			if !c.due(size-anchored, n, now-oldest) {
				continue
			}
			if now-oldest >= c.interval {
				t.Errorf("%d entries/s: an anchor went out by the interval, not paid for", rate)
			}
			anchors, bytes, inflight, commitAt, oldest = anchors+1, bytes+n, size, now+block, now
		}
		if anchors == 0 {
			t.Fatalf("%d entries/s: no anchor in %v", rate, run)
		}
		per10k := float64(bytes) / float64(anchored) * budgetEntries
		wait := time.Duration(waitSum / float64(anchoredEntries) * float64(time.Second))
		t.Logf("%8d %8d %12d %14.0f %12v", rate, anchors, bytes/anchors, per10k, wait.Round(time.Millisecond))
		if per10k > DefaultAnchorBudget {
			t.Errorf("%d entries/s: %.0f bytes of anchors per 10,000 entries; want ≤ %d", rate, per10k, DefaultAnchorBudget)
		}
		if rate >= 20_000 && wait > 500*time.Millisecond {
			t.Errorf("%d entries/s: entries wait %v on average for their anchor; want ≤ 500ms", rate, wait)
		}
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

// TestAnchorOnBudget, on a real one-validator network: with an interval of
// an hour, entries that do not pay for an anchor stay unanchored while
// blocks go by; the entry that pays for it is anchored within a block or
// two. An anchor whose submission fails is sent again, and one lost on the
// way is sent again after TxResubmit; no anchor is sent while another is in
// flight, and none twice.
func TestAnchorOnBudget(t *testing.T) {
	tn := startTestNet(t)
	tn.gw.Close()
	l := &failLedger{NodeLedger: NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()}}
	wide := wideLimits
	// 10 bytes per entry: the first anchor (~250 bytes, no consistency
	// proof) is paid by ~25 entries, the next ones (~350 bytes) by ~35.
	const budget = 100_000
	gw, err := New(Config{Dir: filepath.Join(tn.dir, "budget"), Key: tn.gwKey, AnchorInterval: time.Hour, AnchorBudget: budget,
		TxResubmit: time.Second, NoSync: true, Limits: wide}, l)
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
	// waitAnchored waits until the ledger holds an anchor of size ≥ size
	// and returns how long that took.
	waitAnchored := func(size uint64) time.Duration {
		t.Helper()
		start := time.Now()
		for anchored() < size {
			select {
			case <-ctx.Done():
				t.Fatalf("size %d never anchored (anchored: %d)", size, anchored())
			case <-time.After(10 * time.Millisecond):
			}
		}
		return time.Since(start)
	}
	// paidBy is the number of entries that pay for the anchor of a log
	// grown from size from.
	paidBy := func(from uint64) uint64 {
		st, err := tn.app.View(0)
		if err != nil {
			t.Fatal(err)
		}
		nonce, err := st.Nonce(tn.gwKey.ID())
		if err != nil {
			t.Fatal(err)
		}
		for n := uint64(1); ; n++ {
			if (anchorCadence{budget: budget}).paid(n, anchorTxSize(t, tn.gwKey, "gw-test", from, from+n, nonce+1, uint64(st.Height)+20)) {
				return n
			}
		}
	}

	// Entries short of paying for the first anchor stay unanchored while
	// the chain moves on (five blocks: far more than the duty loop needs
	// to look).
	need := paidBy(0)
	ingest(int(need) - 1)
	h := tn.app.Height()
	if err := tn.net.WaitForHeight(ctx, h+5); err != nil {
		t.Fatal(err)
	}
	if a := anchored(); a != 0 {
		t.Fatalf("anchored %d entries that did not pay for an anchor (%d do)", a, need)
	}
	// The entries that pay for it (one more than counted: heights in the
	// tx's expiry may have grown a byte meanwhile) are anchored at once:
	// within a block or two, not the hour of the interval.
	ingest(2)
	took := waitAnchored(need + 1)
	t.Logf("the entries that paid for the first anchor were anchored after %v", took.Round(time.Millisecond))

	// The next anchor's submission fails: it is sent again after a second.
	l.fail.Store(true)
	ingest(int(paidBy(anchored())) + 1)
	took = waitAnchored(gw.Log().Size())
	t.Logf("an anchor whose submission failed was committed %v after the entry that paid for it (retry after %v)", took.Round(time.Millisecond), dutyRound)
	if l.fail.Load() {
		t.Fatal("the anchor's submission never failed")
	}

	// The next anchor is lost on its way: sent again after TxResubmit.
	l.drop.Store(true)
	ingest(int(paidBy(anchored())) + 1)
	took = waitAnchored(gw.Log().Size())
	t.Logf("a lost anchor was committed %v after the entry that paid for it (TxResubmit %v)", took.Round(time.Millisecond), time.Second)
	if l.drop.Load() {
		t.Fatal("the second anchor was never dropped")
	}

	// A burst much larger than the budget needs: anchors go out one per
	// block at most, never the same size twice, until what is left does
	// not pay for one.
	before := l.anchors.Load()
	ingest(200)
	size := gw.Log().Size()
	for {
		a := anchored()
		if size-a < paidBy(a) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("anchored %d of %d entries: the rest pays for an anchor that never came", a, size)
		case <-time.After(10 * time.Millisecond):
		}
	}
	sent := l.anchors.Load() - before
	if n := tn.app.Rejections()["bad_nonce"]; n != 0 {
		t.Errorf("%d txs refused for their nonce: an anchor was sent while another was in flight", n)
	}
	sizes := anchorSizes(t, tn)
	if !slices.IsSorted(sizes) || len(slices.Compact(slices.Clone(sizes))) != len(sizes) {
		t.Errorf("anchored sizes %v: want strictly increasing (no anchor twice)", sizes)
	}
	t.Logf("200 entries in a burst: %d anchor txs, %d entries left to the interval; anchored sizes: %v", sent, size-anchored(), sizes)
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
