package lightclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cometbft/cometbft/types"
)

// TrustOptions is how a device is provisioned: the hash of a header it
// trusts (obtained out of band, e.g. from its organisation), and for how
// long a trusted header may vouch for newer ones.
type TrustOptions struct {
	Height int64         // height of the trusted header
	Hash   []byte        // its hash (SHA-256, 32 bytes)
	Period time.Duration // trusting period, e.g. two weeks
}

// Client verifies headers and state proofs of one chain from a trusted
// header. It is safe for concurrent use.
type Client struct {
	chainID string
	src     Source
	cfg     config

	mu      sync.Mutex
	trusted types.LightBlock
}

// New provisions a client: it fetches the header at trust.Height from src,
// checks that its hash is trust.Hash, that it is signed by its validators
// and still within the trusting period, and trusts it.
func New(ctx context.Context, chainID string, trust TrustOptions, src Source, opts ...Option) (*Client, error) {
	switch {
	case chainID == "":
		return nil, fmt.Errorf("%w: no chain id", ErrBadTrustOptions)
	case trust.Height <= 0:
		return nil, fmt.Errorf("%w: height %d is not positive", ErrBadTrustOptions, trust.Height)
	case len(trust.Hash) != sha256.Size:
		return nil, fmt.Errorf("%w: the hash is %d bytes, want %d", ErrBadTrustOptions, len(trust.Hash), sha256.Size)
	case trust.Period <= 0:
		return nil, fmt.Errorf("%w: trusting period %v is not positive", ErrBadTrustOptions, trust.Period)
	case src == nil:
		return nil, fmt.Errorf("%w: no source", ErrBadTrustOptions)
	}
	cfg, err := newConfig(append(opts[:len(opts):len(opts)], WithTrustingPeriod(trust.Period)))
	if err != nil {
		return nil, err
	}
	c := &Client{chainID: chainID, src: src, cfg: cfg}
	lb, err := c.fetchWaiting(ctx, trust.Height)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(lb.Hash(), trust.Hash) {
		return nil, fmt.Errorf("%w: header %d is %X, the device trusts %X", ErrTrustedHashMismatch, trust.Height, lb.Hash(), trust.Hash)
	}
	if err := lb.ValidatorSet.VerifyCommitLight(chainID, lb.Commit.BlockID, lb.Height, lb.Commit); err != nil {
		return nil, fmt.Errorf("%w: trusted header %d is not signed by its validators: %v", ErrBadHeader, lb.Height, err)
	}
	if err := c.checkNotExpired(lb, cfg.now()); err != nil {
		return nil, err
	}
	c.trusted = lb
	return c, nil
}

// Restore resumes a client from a state written by State().MarshalBinary,
// with any source (for instance another gateway than before). The
// trusting period is DefaultTrustingPeriod unless WithTrustingPeriod is
// given. An expired state is restored, but cannot verify newer headers.
func Restore(chainID string, state []byte, src Source, opts ...Option) (*Client, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: no source", ErrBadOption)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var st State
	if err := st.UnmarshalBinary(state); err != nil {
		return nil, err
	}
	if st.ChainID != chainID {
		return nil, fmt.Errorf("%w: the state is of chain %q, not %q", ErrBadState, st.ChainID, chainID)
	}
	return &Client{
		chainID: chainID,
		src:     src,
		cfg:     cfg,
		trusted: types.LightBlock{SignedHeader: st.Header, ValidatorSet: st.Validators},
	}, nil
}

// ChainID returns the chain the client verifies.
func (c *Client) ChainID() string { return c.chainID }

// Trusted returns the trusted header. The caller must not modify it.
func (c *Client) Trusted() *types.SignedHeader {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trusted.SignedHeader
}

// State returns what the device should persist to resume with Restore.
// The caller must not modify the header or the validator set.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return State{ChainID: c.chainID, Header: c.trusted.SignedHeader, Validators: c.trusted.ValidatorSet}
}

// Update verifies the source's latest header and trusts it. A source whose
// latest header is the trusted one returns it; one that is behind returns
// ErrSourceBehind.
func (c *Client) Update(ctx context.Context) (*types.SignedHeader, error) {
	lb, err := c.fetch(ctx, 0)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch th := c.trusted.Height; {
	case lb.Height < th:
		return nil, fmt.Errorf("%w: its latest header is %d, the trusted one %d", ErrSourceBehind, lb.Height, th)
	case lb.Height == th:
		return c.sameAsTrusted(lb)
	}
	return c.advance(ctx, lb)
}

// VerifyTo verifies the header of height from the trusted one and trusts
// it. If the source has not committed the height yet, it waits for it (see
// WithHeaderWait). The trusted height itself returns the trusted header. A
// height below the trusted one is verified backwards by hash chaining, as
// VerifyBack does, and does not change the trusted header; it is refused
// with ErrBelowTrusted only when it is further back than WithMaxBackwards
// allows. The state changes only when verification succeeds.
func (c *Client) VerifyTo(ctx context.Context, height int64) (*types.SignedHeader, error) {
	if height <= 0 {
		return nil, fmt.Errorf("lightclient: height %d is not positive", height)
	}
	if trusted := c.Trusted(); height <= trusted.Height {
		return c.back(ctx, trusted, height)
	}
	lb, err := c.fetchWaiting(ctx, height)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if trusted := c.trusted.SignedHeader; height < trusted.Height { // another call got past it first
		c.mu.Unlock()
		return c.back(ctx, trusted, height)
	}
	defer c.mu.Unlock()
	if height == c.trusted.Height { // another call got there first
		return c.sameAsTrusted(lb)
	}
	return c.advance(ctx, lb)
}

// sameAsTrusted checks that a header the source sent for the trusted height
// is the trusted one. The caller holds c.mu.
func (c *Client) sameAsTrusted(lb types.LightBlock) (*types.SignedHeader, error) {
	if !bytes.Equal(lb.Hash(), c.trusted.Hash()) {
		return nil, fmt.Errorf("%w: header %d is %X, the trusted one is %X", ErrBadHeader, lb.Height, lb.Hash(), c.trusted.Hash())
	}
	return c.trusted.SignedHeader, nil
}

// advance verifies target from the trusted header and trusts it. The caller
// holds c.mu.
func (c *Client) advance(ctx context.Context, target types.LightBlock) (*types.SignedHeader, error) {
	now := c.cfg.now()
	if err := c.checkNotExpired(c.trusted, now); err != nil {
		return nil, err
	}
	verified, err := c.verifySkipping(ctx, c.trusted, target, now)
	if err != nil {
		return nil, err
	}
	c.trusted = verified
	return verified.SignedHeader, nil
}

func (c *Client) checkNotExpired(lb types.LightBlock, now time.Time) error {
	if headerExpired(lb.SignedHeader, c.cfg.trustingPeriod, now) {
		return fmt.Errorf("%w: header %d of %v expired at %v (now %v); provision the device again",
			ErrExpired, lb.Height, lb.Time, lb.Time.Add(c.cfg.trustingPeriod), now)
	}
	return nil
}

// ParseTrust reads a trusted header as HEIGHT:HASH (the hash in hex, as
// `thingnet tx block HEIGHT` prints it), with a trusting period of two
// weeks.
func ParseTrust(s string) (TrustOptions, error) {
	h, hash, ok := strings.Cut(s, ":")
	height, err := strconv.ParseInt(h, 10, 64)
	if !ok || err != nil || height < 1 {
		return TrustOptions{}, fmt.Errorf("trust %q: want HEIGHT:HASH (the hash in hex, as `thingnet tx block HEIGHT` prints it)", s)
	}
	b, err := hex.DecodeString(hash)
	if err != nil || len(b) != 32 {
		return TrustOptions{}, fmt.Errorf("trust %q: the hash must be 64 hex digits", s)
	}
	return TrustOptions{Height: height, Hash: b, Period: 14 * 24 * time.Hour}, nil
}
