package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/chain"
)

// blockEventCapacity is how many NewBlock events a subscription may buffer before
// CometBFT cancels it for being slow; reading one takes microseconds per transaction.
const blockEventCapacity = 1000

// commitTracker learns when transactions are committed from the NewBlock events of
// every node. The first node to report a height gives the commit time of its
// transactions; the others back it up if one node is slow or stops.
type commitTracker struct {
	index    map[[sha256.Size]byte]int // tx hash -> position in FloodConfig.Txs
	onCommit func(i int)               // called once per committed tx, outside mu

	mu          sync.Mutex
	committedAt []time.Time // zero until committed
	codes       []uint32
	logs        map[int]string // failed txs' result logs
	committed   int
	seen        map[int64]bool // heights processed
	live        int            // subscriptions not cancelled
	lastErr     error          // why the last subscription ended
	changed     chan struct{}  // receives after every change, capacity 1

	subscriber string
	buses      []*types.EventBus
	closers    []func() // remote subscriptions (remote.go)
	stop       chan struct{}
	wg         sync.WaitGroup
}

func newCommitTracker(nodes []*chain.Node, txs [][]byte, onCommit func(int)) (*commitTracker, error) {
	t, err := newTracker(txs, onCommit)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		bus := n.Comet().EventBus()
		sub, err := bus.Subscribe(context.Background(), t.subscriber, types.EventQueryNewBlock, blockEventCapacity)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("bench: subscribe to new blocks on %s: %w", n.Config().Moniker, err)
		}
		t.buses = append(t.buses, bus)
		t.live++
		t.wg.Go(func() { t.follow(sub) })
	}
	return t, nil
}

// newTracker returns a tracker of txs that follows no node yet.
func newTracker(txs [][]byte, onCommit func(int)) (*commitTracker, error) {
	t := &commitTracker{
		index:       make(map[[sha256.Size]byte]int, len(txs)),
		onCommit:    onCommit,
		committedAt: make([]time.Time, len(txs)),
		codes:       make([]uint32, len(txs)),
		logs:        map[int]string{},
		seen:        make(map[int64]bool),
		changed:     make(chan struct{}, 1),
		subscriber:  "bench-flood-" + rand.Text(),
		stop:        make(chan struct{}),
	}
	for i, tx := range txs {
		h := sha256.Sum256(tx)
		if j, dup := t.index[h]; dup {
			return nil, fmt.Errorf("bench: tx %d repeats tx %d; a mempool accepts a tx once", i, j)
		}
		t.index[h] = i
	}
	return t, nil
}

func (t *commitTracker) follow(sub types.Subscription) {
	for {
		select {
		case msg := <-sub.Out():
			if ev, ok := msg.Data().(types.EventDataNewBlock); ok {
				t.record(ev, time.Now())
			}
		case <-sub.Canceled():
			t.mu.Lock()
			t.live--
			t.lastErr = sub.Err()
			t.mu.Unlock()
			t.signal()
			return
		case <-t.stop:
			return
		}
	}
}

func (t *commitTracker) record(ev types.EventDataNewBlock, at time.Time) {
	var mine []int
	t.mu.Lock()
	if h := ev.Block.Height; !t.seen[h] {
		t.seen[h] = true
		results := ev.ResultFinalizeBlock.TxResults
		for k, tx := range ev.Block.Txs {
			i, ok := t.index[sha256.Sum256(tx)]
			if !ok || !t.committedAt[i].IsZero() {
				continue
			}
			t.committedAt[i] = at
			if k < len(results) {
				t.codes[i] = results[k].Code
				if results[k].Code != 0 {
					t.logs[i] = results[k].Log
				}
			}
			t.committed++
			mine = append(mine, i)
		}
	}
	t.mu.Unlock()
	for _, i := range mine {
		t.onCommit(i)
	}
	if len(mine) > 0 {
		t.signal()
	}
}

func (t *commitTracker) signal() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// wait returns once want transactions are committed, or with an error when ctx ends
// or no subscription is left.
func (t *commitTracker) wait(ctx context.Context, want int) error {
	for {
		t.mu.Lock()
		committed, live, lastErr := t.committed, t.live, t.lastErr
		t.mu.Unlock()
		switch {
		case committed >= want:
			return nil
		case live == 0:
			return fmt.Errorf("bench: %d of %d txs committed, then every node's event subscription ended (last: %v)",
				committed, want, lastErr)
		}
		select {
		case <-t.changed:
		case <-ctx.Done():
			return fmt.Errorf("bench: %d of %d txs committed: %w", committed, want, ctx.Err())
		}
	}
}

// result returns the commit time, result code and (for a failure) log of tx
// i; ok is false if it is not committed.
func (t *commitTracker) result(i int) (at time.Time, code uint32, log string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.committedAt[i], t.codes[i], t.logs[i], !t.committedAt[i].IsZero()
}

// close ends the subscriptions and waits for their goroutines.
func (t *commitTracker) close() {
	close(t.stop)
	for _, bus := range t.buses {
		// A stopped node's bus has dropped its subscriptions already, and a failed
		// unsubscribe leaves nothing to do: the subscription dies with its bus.
		if bus.IsRunning() {
			_ = bus.UnsubscribeAll(context.Background(), t.subscriber)
		}
	}
	for _, c := range t.closers {
		c()
	}
	t.wg.Wait()
}
