// Block retention: the RetainHeight the ledger gives CometBFT in Commit,
// below which the node deletes its blocks.

package ledger

import (
	"sync"
	"time"
)

// RetainPolicy says which blocks a node keeps. With neither Blocks nor Age
// set it keeps every block. Otherwise it keeps the last Blocks blocks and
// the blocks younger than Age (by block time) — whichever reaches further
// back — and never deletes a block that the evidence rules (a block is
// evidence-relevant until it is both EvidenceBlocks and EvidenceAge old,
// the genesis's consensus_params.evidence) or a served state sync snapshot
// (its height) still need.
type RetainPolicy struct {
	Blocks         int64
	Age            time.Duration
	EvidenceBlocks int64
	EvidenceAge    time.Duration
}

// retainEvery spaces the retain height computations (0 in between: no change).
const retainEvery = 10

// retention computes Commit's RetainHeight.
type retention struct {
	p  RetainPolicy
	mu sync.Mutex
	// blockTime returns a block's time from the node's block store (false
	// if it does not have it); nil until the node sets it.
	blockTime func(height int64) (time.Time, bool)
}

// SetBlockTimes gives the ledger the block store's block times, which the
// age-based retention needs; until then only block counts are used, and
// with an age set nothing is pruned.
func (a *App) SetBlockTimes(f func(height int64) (time.Time, bool)) {
	a.retain.mu.Lock()
	defer a.retain.mu.Unlock()
	a.retain.blockTime = f
}

// retainHeight returns the lowest height to keep after committing h (0:
// keep everything, no change). snapshotFloor is the oldest served
// snapshot's height (0: none).
func (r *retention) retainHeight(h, snapshotFloor int64) int64 {
	p := r.p
	if (p.Blocks <= 0 && p.Age <= 0) || h%retainEvery != 0 {
		return 0
	}
	keep := h // lowest height kept so far
	if p.Blocks > 0 {
		keep = min(keep, h-p.Blocks+1)
	}
	if p.EvidenceBlocks > 0 {
		keep = min(keep, h-p.EvidenceBlocks)
	}
	if snapshotFloor > 0 {
		keep = min(keep, snapshotFloor)
	}
	if age := max(p.Age, p.EvidenceAge); age > 0 && keep > 1 {
		r.mu.Lock()
		bt := r.blockTime
		r.mu.Unlock()
		if bt == nil {
			return 0
		}
		now, ok := bt(h)
		if !ok {
			return 0
		}
		keep = min(keep, firstAtOrAfter(bt, now.Add(-age), keep))
	}
	if keep <= 1 {
		return 0
	}
	return keep
}

// firstAtOrAfter returns the lowest height in [1, hi] whose block time is
// at or after t (hi if none below it is); block times increase with height
// and a block the store no longer has counts as older than t.
func firstAtOrAfter(bt func(int64) (time.Time, bool), t time.Time, hi int64) int64 {
	lo := int64(1)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if tm, ok := bt(mid); ok && !tm.Before(t) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return hi
}
