package lightclient

import (
	"context"
	"fmt"

	"github.com/cometbft/cometbft/types"
)

// VerifyBack verifies the header of height, at or below the trusted one,
// by hash chaining: it fetches the headers from the trusted height down to
// height one at a time, and accepts each one only if its hash is the
// LastBlockID of the header above it (light.VerifyBackwards: same chain,
// older time, matching hash). Each header is thus authenticated by its
// successor, back to the trusted one; no validator set or signature is
// needed, and the trusting period does not apply. The commit of the header
// returned is not verified (only that it names the header's hash).
//
// A walk longer than the bound (WithMaxBackwards, DefaultMaxBackwards by
// default) is refused with ErrBelowTrusted before anything is fetched. A
// height above the trusted one is an error (use VerifyTo). VerifyBack does
// not change the trusted state.
func (c *Client) VerifyBack(ctx context.Context, height int64) (*types.SignedHeader, error) {
	if height <= 0 {
		return nil, fmt.Errorf("lightclient: height %d is not positive", height)
	}
	trusted := c.Trusted()
	if height > trusted.Height {
		return nil, fmt.Errorf("lightclient: height %d is above the trusted header %d (verify it with VerifyTo)", height, trusted.Height)
	}
	return c.back(ctx, trusted, height)
}

// back verifies the header of height, at or below trusted, from trusted.
// The caller must not hold c.mu: it fetches headers.
func (c *Client) back(ctx context.Context, trusted *types.SignedHeader, height int64) (*types.SignedHeader, error) {
	if height == trusted.Height {
		return trusted, nil
	}
	if gap := trusted.Height - height; gap > c.cfg.maxBackwards {
		return nil, fmt.Errorf("%w: header %d is %d headers below the trusted header %d; backwards verification walks at most %d (WithMaxBackwards)",
			ErrBelowTrusted, height, gap, trusted.Height, c.cfg.maxBackwards)
	}
	next := trusted // the verified header above the one fetched
	for h := trusted.Height - 1; h >= height; h-- {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("walking back from header %d to %d: stopped at %d: %w", trusted.Height, height, h, err)
		}
		sh, err := c.fetchHeader(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("walking back from header %d to %d: %w", trusted.Height, height, err)
		}
		if err := verifyBackwards(sh.Header, next.Header); err != nil {
			return nil, fmt.Errorf("%w: header %d is not the one header %d links to (walking back from %d): %v",
				ErrNotVerified, h, h+1, trusted.Height, err)
		}
		next = sh
	}
	return next, nil
}

// fetchHeader gets the signed header of height from the source and checks
// that it is well formed, of this chain and of the height asked for. The
// validator set sent with it is ignored: backwards verification does not
// need it.
func (c *Client) fetchHeader(ctx context.Context, height int64) (*types.SignedHeader, error) {
	sh, _, err := c.src.Header(ctx, height)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", heightName(height), err)
	}
	if sh == nil || sh.Header == nil || sh.Commit == nil {
		return nil, fmt.Errorf("%w: %s: the header or its commit is missing", ErrBadHeader, heightName(height))
	}
	if sh.Height != height {
		return nil, fmt.Errorf("%w: asked for header %d, got %d", ErrBadHeader, height, sh.Height)
	}
	if err := sh.ValidateBasic(c.chainID); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadHeader, heightName(height), err)
	}
	return sh, nil
}
