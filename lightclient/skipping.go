package lightclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cometbft/cometbft/types"
)

// verifySkipping verifies target from trusted with CometBFT's skipping
// verification (light.Verify, in verify.go). When the trusted validator set cannot vouch
// for a header because the set changed too much (ErrNewValSetCantBeTrusted),
// it fetches the header half way, verifies that first and continues from
// it: bisection, as CometBFT's own light client does. It returns the last
// header verified, target itself.
func (c *Client) verifySkipping(ctx context.Context, trusted, target types.LightBlock, now time.Time) (types.LightBlock, error) {
	verified := trusted
	pending := []types.LightBlock{target} // headers still to verify, the next one last
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			return types.LightBlock{}, err
		}
		next := pending[len(pending)-1]
		err := verify(verified.SignedHeader, verified.ValidatorSet, next.SignedHeader, next.ValidatorSet,
			c.cfg.trustingPeriod, now, c.cfg.maxClockDrift, c.cfg.trustLevel)
		var cantTrust errNewValSetCantBeTrusted
		switch {
		case err == nil:
			verified = next
			pending = pending[:len(pending)-1]
		case errors.As(err, &cantTrust) && next.Height-verified.Height > 1:
			pivot := verified.Height + (next.Height-verified.Height)/2
			lb, err := c.fetch(ctx, pivot)
			if err != nil {
				return types.LightBlock{}, fmt.Errorf("bisecting from %d to %d: %w", verified.Height, next.Height, err)
			}
			pending = append(pending, lb)
		default:
			return types.LightBlock{}, verifyError(verified.Height, next.Height, err)
		}
	}
	return verified, nil
}

func verifyError(from, to int64, err error) error {
	var expired errOldHeaderExpired
	if errors.As(err, &expired) {
		return fmt.Errorf("%w: %v", ErrExpired, err)
	}
	return fmt.Errorf("%w: header %d from header %d: %w", ErrNotVerified, to, from, err)
}

// fetch gets the header of height (0: latest) from the source and checks
// that it is well formed, of this chain and of the height asked for, and
// carries the hash of the validator set sent with it. It does not say the
// header is true: that is verification's job.
func (c *Client) fetch(ctx context.Context, height int64) (types.LightBlock, error) {
	sh, vals, err := c.src.Header(ctx, height)
	if err != nil {
		return types.LightBlock{}, fmt.Errorf("fetching %s: %w", heightName(height), err)
	}
	lb := types.LightBlock{SignedHeader: sh, ValidatorSet: vals}
	if sh == nil || sh.Header == nil || vals == nil {
		return types.LightBlock{}, fmt.Errorf("%w: %s: the header, its commit or its validators are missing", ErrBadHeader, heightName(height))
	}
	if height != 0 && sh.Height != height {
		return types.LightBlock{}, fmt.Errorf("%w: asked for header %d, got %d", ErrBadHeader, height, sh.Height)
	}
	if err := lb.ValidateBasic(c.chainID); err != nil {
		return types.LightBlock{}, fmt.Errorf("%w: %s: %v", ErrBadHeader, heightName(height), err)
	}
	return lb, nil
}

// fetchWaiting is fetch, waiting up to the header wait (and no longer than
// ctx) for a height the source has not committed yet.
func (c *Client) fetchWaiting(ctx context.Context, height int64) (types.LightBlock, error) {
	deadline := time.Now().Add(c.cfg.headerWait)
	for {
		lb, err := c.fetch(ctx, height)
		if !errors.Is(err, ErrHeaderNotFound) || !time.Now().Add(headerPoll).Before(deadline) {
			return lb, err
		}
		t := time.NewTimer(headerPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return lb, fmt.Errorf("%w (stopped waiting: %v)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// heightName names the header of height h (0: the latest) in errors.
func heightName(h int64) string {
	if h == 0 {
		return "the latest header"
	}
	return fmt.Sprintf("header %d", h)
}
