package lightclient

import (
	"fmt"
	"testing"
	"time"

	cmtmath "github.com/cometbft/cometbft/libs/math"
	"github.com/cometbft/cometbft/light"
	"github.com/cometbft/cometbft/types"
)

// TestVerifyAsCometBFT: verify.go gives CometBFT's light package's answer
// (nil, or the same message) on every pair of headers of two chains, one
// signed by other validators, at times before and after the trusting
// period, and on tampered headers.
func TestVerifyAsCometBFT(t *testing.T) {
	a := synthChain(t, "chain-a", 8, 4)
	b := synthChain(t, "chain-a", 8, 3) // same chain id, other validators
	var blocks []types.LightBlock
	for h := int64(1); h <= 8; h++ {
		blocks = append(blocks, a.blocks[h], b.blocks[h])
	}
	late := a.blocks[8].SignedHeader
	tampered := *late
	hdr := *late.Header
	hdr.Time = hdr.Time.Add(time.Hour)
	tampered.Header = &hdr
	blocks = append(blocks, types.LightBlock{SignedHeader: &tampered, ValidatorSet: a.blocks[8].ValidatorSet})
	same := func(what string, got, want error) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v; want %v", what, got, want)
		}
	}
	now := time.Now()
	levels := []cmtmath.Fraction{defaultTrustLevel, {Numerator: 2, Denominator: 3}, {Numerator: 1, Denominator: 4}, {Numerator: 2, Denominator: 1}, {}}
	for _, lvl := range levels {
		same(fmt.Sprintf("trust level %v", lvl), validateTrustLevel(lvl), light.ValidateTrustLevel(lvl))
	}
	for i, tr := range blocks {
		for j, un := range blocks {
			for _, period := range []time.Duration{time.Hour, 30 * time.Second} {
				for _, lvl := range levels[:2] {
					what := fmt.Sprintf("%d→%d period %v level %v", i, j, period, lvl)
					same(what, verify(tr.SignedHeader, tr.ValidatorSet, un.SignedHeader, un.ValidatorSet, period, now, 10*time.Second, lvl),
						light.Verify(tr.SignedHeader, tr.ValidatorSet, un.SignedHeader, un.ValidatorSet, period, now, 10*time.Second, lvl))
				}
				if headerExpired(tr.SignedHeader, period, now) != light.HeaderExpired(tr.SignedHeader, period, now) {
					t.Errorf("%d expired with period %v: differs", i, period)
				}
			}
			same(fmt.Sprintf("backwards %d→%d", j, i), verifyBackwards(un.Header, tr.Header), light.VerifyBackwards(un.Header, tr.Header))
		}
	}
}
