package ledger

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/thingnet/thingnet/identity"
)

// sigBatcher gathers the signature checks of concurrent callers (PreCheckTx
// runs in every RPC handler and peer mempool reactor that submits a tx)
// into batches for identity.Batch, whose per-signature cost falls with the
// batch's size. The first caller of a batch leads it: it waits for a
// verifier slot (at most slots batches are verified at once) and, if wait
// is not 0, up to wait for the batch to reach max signatures; meanwhile
// later callers join the batch. The leader then verifies the batch and
// every caller gets its own signature's answer, that of
// PublicKey.Verify (identity.Batch verifies each signature of a batch that
// fails on its own, so one bad signature does not fail the others).
//
// With wait 0 a batch never waits for a timer: under light load it holds
// one signature, verified on its own; under load, callers
// arriving while the slots are busy form the next batch. The ledger gives
// it a slot per core (GOMAXPROCS): a lone signature never waits for
// another's check while a core is free, as PreCheckTx's checks ran on
// every core before they were batched, and batches form once every core
// is verifying.
//
// It is only used on the mempool path: block execution verifies in its own
// batches (preverify), whatever this holds.
type sigBatcher struct {
	max   int
	wait  time.Duration
	slots chan struct{}

	mu  sync.Mutex
	cur *sigBatch // collecting callers; nil when none is

	batches, sigs atomic.Uint64 // verified so far, for the bench and tests
}

type sigBatch struct {
	b *identity.Batch // from the second signature on
	n int
	// The first signature, verified on its own if it stays alone: a
	// batch of one costs ~30% more than a single check (BenchmarkBatchSizes).
	pub      identity.PublicKey
	msg, sig []byte
	full     chan struct{} // closed when n reaches max; nil without a wait
	done     chan struct{} // closed when valid is set
	valid    []bool
}

func newSigBatcher(max, slots int, wait time.Duration) *sigBatcher {
	return &sigBatcher{max: max, wait: wait, slots: make(chan struct{}, slots)}
}

// verify reports whether sig is pub's signature of msg, checked in a batch
// with those of concurrent callers. msg and sig must not change until it
// returns.
func (s *sigBatcher) verify(pub identity.PublicKey, msg, sig []byte) bool {
	s.mu.Lock()
	lead := s.cur == nil
	if lead {
		s.cur = &sigBatch{done: make(chan struct{}), pub: pub, msg: msg, sig: sig}
		if s.wait > 0 {
			s.cur.full = make(chan struct{})
		}
	}
	b := s.cur
	i := b.n
	if i == 1 { // a second signature: now a batch
		b.b = identity.NewBatch(s.max)
		b.b.Add(b.pub, b.msg, b.sig)
	}
	if i >= 1 {
		b.b.Add(pub, msg, sig)
	}
	b.n++
	if b.n >= s.max {
		s.cur = nil // the next caller starts a new batch
		if b.full != nil {
			close(b.full)
		}
	}
	s.mu.Unlock()
	if !lead {
		<-b.done
		return b.valid[i]
	}
	if s.wait > 0 {
		t := time.NewTimer(s.wait)
		select {
		case <-b.full:
		case <-t.C:
		}
		t.Stop()
	}
	s.slots <- struct{}{} // the batch keeps filling while the slots are busy
	s.mu.Lock()
	if s.cur == b {
		s.cur = nil
	}
	s.mu.Unlock()
	if b.n == 1 {
		b.valid = []bool{b.pub.Verify(b.msg, b.sig) == nil}
	} else {
		_, b.valid = b.b.Verify()
	}
	<-s.slots
	s.batches.Add(1)
	s.sigs.Add(uint64(b.n))
	close(b.done)
	return b.valid[i]
}

// BatchStats returns how many batches the mempool path's signature checks
// were gathered into and how many signatures they held (PreCheckTx's
// checks; a signature CheckTx or a block verifies is not counted).
func (a *App) BatchStats() (batches, sigs uint64) {
	return a.batcher.batches.Load(), a.batcher.sigs.Load()
}
