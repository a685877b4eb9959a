package gateway

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// testCID is a valid CIDv1 (raw, SHA2-256) of s.
func testCID(t *testing.T, s string) string {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h).String()
}

// swapGateway replaces the test net's gateway by one with c (Dir and Key
// filled in) over l.
func (tn *testNet) swapGateway(t *testing.T, name string, c Config, l Ledger) *Gateway {
	t.Helper()
	tn.gw.Close()
	c.Dir, c.Key = filepath.Join(tn.dir, name), tn.gwKey
	gw, err := New(c, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	return gw
}

// pinnedBy reports whether the ledger records that gw pins c.
func (tn *testNet) pinnedBy(t *testing.T, c, gw string) bool {
	t.Helper()
	st, err := tn.app.View(0)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := st.FilePins(c)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(ps, func(p record.FilePin) bool { return p.Pinner == gw })
}

// TestTxQueueWithAnchors: while readings keep arriving (an anchor is due
// every round), messages queued from several goroutines all get committed
// with the gateway key, each told once, and no tx of the gateway is ever
// refused for its nonce; the log ends anchored up to its last reading.
func TestTxQueueWithAnchors(t *testing.T) {
	tn := startTestNet(t)
	gw := tn.swapGateway(t, "queue", Config{AnchorInterval: 100 * time.Millisecond}, NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	load, stopLoad := context.WithCancel(ctx)
	var loadDone sync.WaitGroup
	loadDone.Add(1)
	go func() { // a reading every 20 ms: the log grows all the time
		defer loadDone.Done()
		for seq := uint64(1); load.Err() == nil; seq++ {
			raw, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(seq, float64(seq)))
			gw.Ingest(load, "", raw, "127.0.0.1") //nolint:errcheck // refusals by the rate limit are fine here
			time.Sleep(20 * time.Millisecond)
		}
	}()

	const workers, each = 4, 8
	var cids []string
	results := make(chan error, workers*each)
	var calls atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		var mine []string
		for i := range each {
			mine = append(mine, testCID(t, fmt.Sprint(w, "/", i)))
		}
		cids = append(cids, mine...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range mine {
				if err := gw.Enqueue(&record.FilePinMsg{CID: c}, func(err error) { calls.Add(1); results <- err }); err != nil {
					results <- err
				}
				time.Sleep(30 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for range workers * each {
		select {
		case err := <-results:
			if err != nil {
				t.Fatalf("a queued pin: %v", err)
			}
		case <-ctx.Done():
			t.Fatalf("queued pins not all committed: %d of %d told, %d still queued", calls.Load(), workers*each, gw.Queued())
		}
	}
	stopLoad()
	loadDone.Wait()
	for _, c := range cids {
		if !tn.pinnedBy(t, c, gw.ID()) {
			t.Errorf("pin of %s told committed but not on the ledger", c)
		}
	}
	size := gw.Log().Size()
	if size == 0 {
		t.Fatal("no reading was stored: the test had no anchoring load")
	}
	for {
		st, err := tn.app.View(0)
		if err != nil {
			t.Fatal(err)
		}
		if a, err := st.Anchor(gw.ID()); err == nil && a.Size == size {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the log (%d readings) was never anchored in full", size)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if n := tn.app.Rejections()["bad_nonce"]; n != 0 {
		t.Errorf("%d txs refused for their nonce; the gateway key's txs must never collide", n)
	}
	if n := calls.Load(); n != workers*each {
		t.Errorf("done called %d times; want once per message (%d)", n, workers*each)
	}
}

// dropLedger loses the next tx it is given (as a mempool that drops it),
// and may pretend the ledger has no state yet.
type dropLedger struct {
	NodeLedger
	dropNext atomic.Bool
	dropped  atomic.Int64
	noState  bool
}

func (l *dropLedger) View() (*ledger.State, error) {
	if l.noState {
		return nil, ledger.ErrNoState
	}
	return l.NodeLedger.View()
}

func (l *dropLedger) Submit(ctx context.Context, tx []byte) error {
	if l.dropNext.CompareAndSwap(true, false) {
		l.dropped.Add(1)
		return nil
	}
	return l.NodeLedger.Submit(ctx, tx)
}

// TestTxQueueResubmit: a tx that never reaches the chain is sent again
// after TxResubmit, with the queued message it held.
func TestTxQueueResubmit(t *testing.T) {
	tn := startTestNet(t)
	l := &dropLedger{NodeLedger: NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()}}
	gw := tn.swapGateway(t, "resubmit", Config{AnchorInterval: 100 * time.Millisecond, TxResubmit: time.Second}, l)
	ctx := testutil.Context(t, time.Minute)
	c1, c2 := testCID(t, "lost once"), testCID(t, "behind it")
	done := make(chan error, 2)
	l.dropNext.Store(true)
	for _, c := range []string{c1, c2} {
		if err := gw.Enqueue(&record.FilePinMsg{CID: c}, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("the pins were never committed after the first tx was lost")
		}
	}
	if l.dropped.Load() != 1 {
		t.Fatalf("dropped %d txs; want the first", l.dropped.Load())
	}
	for _, c := range []string{c1, c2} {
		if !tn.pinnedBy(t, c, gw.ID()) {
			t.Errorf("%s is not pinned on the ledger", c)
		}
	}
	// Unpin goes through the same queue.
	if err := gw.Enqueue(&record.FilePinMsg{CID: c1, Unpin: true}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if tn.pinnedBy(t, c1, gw.ID()) || !tn.pinnedBy(t, c2, gw.ID()) {
		t.Errorf("after unpinning %s: want only %s pinned", c1, c2)
	}
}

// TestTxQueueBounds: an invalid message is refused before it is queued; a
// full queue refuses with ErrQueueFull and queues nothing; closing the
// gateway tells every queued message.
func TestTxQueueBounds(t *testing.T) {
	tn := startTestNet(t)
	l := &dropLedger{NodeLedger: NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()}, noState: true}
	gw := tn.swapGateway(t, "bounds", Config{TxQueueLen: 3}, l)
	if err := gw.Enqueue(&record.FilePinMsg{CID: "not-a-cid"}, nil); err == nil {
		t.Errorf("a pin of %q was queued", "not-a-cid")
	}
	var told []error
	var mu sync.Mutex
	for i := range 3 {
		if err := gw.Enqueue(&record.FilePinMsg{CID: testCID(t, fmt.Sprint(i))}, func(err error) { mu.Lock(); told = append(told, err); mu.Unlock() }); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := gw.Enqueue(&record.FilePinMsg{CID: testCID(t, "one too many")}, nil); !errors.Is(err, ErrQueueFull) {
		t.Errorf("4th message in a queue of 3: %v; want ErrQueueFull", err)
	}
	if gw.Queued() != 3 {
		t.Errorf("queued = %d; want 3", gw.Queued())
	}
	gw.Close()
	if len(told) != 3 || !errors.Is(told[0], ErrClosed) {
		t.Errorf("after Close the queued messages were told %v; want ErrClosed three times", told)
	}
	if err := gw.Enqueue(&record.FilePinMsg{CID: testCID(t, "late")}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close: %v; want ErrClosed", err)
	}
}
