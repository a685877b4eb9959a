package lightclient

import (
	"bytes"
	"context"
	"fmt"

	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/record"
)

// VerifyProof checks a state proof from an untrusted node: it verifies the
// header of height p.Height+1, which carries the app hash of the state
// after block p.Height (with VerifyTo when it is above the trusted header,
// a comparison when it is the trusted one, VerifyBack when it is below),
// and then the proof of the value, or of the key's absence when p.Value is
// nil, against that app hash. Verifying a proof above the trusted height
// makes its header the trusted one; a proof below it (an old record, a
// data anchor from a while ago) is checked against a header hash-linked to
// the trusted one and leaves the state as it is. A proof further back than
// WithMaxBackwards allows is refused with ErrBelowTrusted.
func (c *Client) VerifyProof(ctx context.Context, p *record.Proof) error {
	if p == nil {
		return fmt.Errorf("%w: no proof", record.ErrBadProof)
	}
	if p.Height <= 0 {
		return fmt.Errorf("%w: height %d is not positive", record.ErrBadProof, p.Height)
	}
	var sh *types.SignedHeader
	var err error
	if h := p.Height + 1; h < c.Trusted().Height {
		sh, err = c.VerifyBack(ctx, h)
	} else {
		sh, err = c.VerifyTo(ctx, h) // walks back too if the trusted header moved past h meanwhile
	}
	if err != nil {
		return fmt.Errorf("the header carrying the app hash of height %d: %w", p.Height, err)
	}
	if p.Root != nil && !bytes.Equal(p.Root, sh.AppHash) {
		return fmt.Errorf("%w: root %X, app hash %X in header %d", ErrAppHashMismatch, p.Root, []byte(sh.AppHash), sh.Height)
	}
	return record.VerifyProof(sh.AppHash, p.Key, p.Value, p.Proof)
}
