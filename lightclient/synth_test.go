package lightclient

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto/tmhash"
	cmtversion "github.com/cometbft/cometbft/proto/tendermint/version"
	"github.com/cometbft/cometbft/types"
	"github.com/cometbft/cometbft/version"
)

// synthSource serves a chain of headers built and signed in the test, for
// the unit tests that need no network (sizes, malformed answers, races).
// Consensus is not simulated: every header is signed by one fixed set.
type synthSource struct {
	blocks map[int64]types.LightBlock
	latest int64
}

func (s *synthSource) Header(_ context.Context, height int64) (*types.SignedHeader, *types.ValidatorSet, error) {
	if height == 0 {
		height = s.latest
	}
	lb, ok := s.blocks[height]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %d", ErrHeaderNotFound, height)
	}
	return lb.SignedHeader, lb.ValidatorSet, nil
}

var testParts = types.PartSetHeader{Total: 1, Hash: tmhash.Sum([]byte("parts"))}

// synthHeader is a valid header of height signed by vals.
func synthHeader(t testing.TB, chainID string, height int64, at time.Time, last types.BlockID, vals *types.ValidatorSet, sign signFunc) *types.SignedHeader {
	t.Helper()
	h := types.Header{
		Version:            cmtversion.Consensus{Block: version.BlockProtocol},
		ChainID:            chainID,
		Height:             height,
		Time:               at,
		LastBlockID:        last,
		LastCommitHash:     tmhash.Sum([]byte("last commit")),
		DataHash:           tmhash.Sum([]byte("data")),
		NextValidatorsHash: vals.Hash(),
		ConsensusHash:      tmhash.Sum([]byte("consensus")),
		AppHash:            tmhash.Sum(fmt.Appendf(nil, "app %d", height)),
		LastResultsHash:    tmhash.Sum([]byte("results")),
		EvidenceHash:       tmhash.Sum([]byte("evidence")),
		ProposerAddress:    vals.Validators[0].Address,
	}
	sh, err := forge(h, vals, testParts, sign)
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// synthChain is n blocks from height 1, one a second ending a minute ago,
// all signed by nVals fresh validators.
func synthChain(t testing.TB, chainID string, n, nVals int) *synthSource {
	t.Helper()
	vals, sign := freshValidators(nVals)
	s := &synthSource{blocks: map[int64]types.LightBlock{}, latest: int64(n)}
	start := time.Now().Add(-time.Minute - time.Duration(n)*time.Second).UTC()
	var last types.BlockID
	for h := int64(1); h <= int64(n); h++ {
		sh := synthHeader(t, chainID, h, start.Add(time.Duration(h)*time.Second), last, vals, sign)
		s.blocks[h] = types.LightBlock{SignedHeader: sh, ValidatorSet: vals}
		last = sh.Commit.BlockID
	}
	return s
}
