package chain

import (
	"time"

	"github.com/cometbft/cometbft/types"
)

// BlockTimes returns a function giving the time of a block in n's block
// store (false if the store does not hold it, pruned or not yet there):
// what the ledger's age-based block retention reads.
func BlockTimes(n *Node) func(height int64) (time.Time, bool) {
	bs := n.comet.BlockStore()
	return func(h int64) (time.Time, bool) {
		if h < bs.Base() || h > bs.Height() {
			return time.Time{}, false
		}
		m := bs.LoadBlockMeta(h)
		if m == nil {
			return time.Time{}, false
		}
		return m.Header.Time, true
	}
}

// EvidenceAge returns the genesis's evidence max age in home, in blocks and
// in time (CometBFT's defaults if the genesis leaves them out): a block
// stays evidence-relevant until it is older than both.
func EvidenceAge(home string) (int64, time.Duration, error) {
	doc, err := ReadGenesis(home)
	if err != nil {
		return 0, 0, err
	}
	ev := types.DefaultEvidenceParams()
	if doc.ConsensusParams != nil {
		ev = doc.ConsensusParams.Evidence
	}
	return ev.MaxAgeNumBlocks, ev.MaxAgeDuration, nil
}
