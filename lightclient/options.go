package lightclient

import (
	"fmt"
	"time"

	cmtmath "github.com/cometbft/cometbft/libs/math"
)

const (
	// DefaultTrustingPeriod is the trusting period Restore uses unless
	// WithTrustingPeriod says otherwise. It must be shorter than the time
	// in which a validator that left could still be punished for signing.
	DefaultTrustingPeriod = 14 * 24 * time.Hour
	// DefaultMaxClockDrift is how far in the future a header's time may be
	// (CometBFT's light client default).
	DefaultMaxClockDrift = 10 * time.Second
	// DefaultHeaderWait is how long VerifyTo and VerifyProof wait for a
	// height the source has not committed yet.
	DefaultHeaderWait = 15 * time.Second
	// DefaultMaxBackwards is how many headers backwards verification
	// (VerifyBack, and VerifyTo and VerifyProof below the trusted height)
	// may fetch to reach one height.
	DefaultMaxBackwards = 10_000

	headerPoll = 200 * time.Millisecond
)

// Option configures a Client.
type Option func(*config)

type config struct {
	now            func() time.Time
	trustLevel     cmtmath.Fraction
	maxClockDrift  time.Duration
	trustingPeriod time.Duration
	headerWait     time.Duration
	maxBackwards   int64
}

func newConfig(opts []Option) (config, error) {
	c := config{
		now:            time.Now,
		trustLevel:     defaultTrustLevel,
		maxClockDrift:  DefaultMaxClockDrift,
		trustingPeriod: DefaultTrustingPeriod,
		headerWait:     DefaultHeaderWait,
		maxBackwards:   DefaultMaxBackwards,
	}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case c.now == nil:
		return c, fmt.Errorf("%w: WithClock(nil)", ErrBadOption)
	case c.maxClockDrift < 0:
		return c, fmt.Errorf("%w: negative max clock drift %v", ErrBadOption, c.maxClockDrift)
	case c.trustingPeriod <= 0:
		return c, fmt.Errorf("%w: trusting period %v is not positive", ErrBadOption, c.trustingPeriod)
	case c.headerWait < 0:
		return c, fmt.Errorf("%w: negative header wait %v", ErrBadOption, c.headerWait)
	case c.maxBackwards < 0:
		return c, fmt.Errorf("%w: negative max backwards %d", ErrBadOption, c.maxBackwards)
	}
	if err := validateTrustLevel(c.trustLevel); err != nil {
		return c, fmt.Errorf("%w: %v", ErrBadOption, err)
	}
	return c, nil
}

// WithClock sets the clock that decides whether the trusted header has
// expired and whether a header is from the future (default time.Now).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithTrustLevel sets the fraction of the trusted validator set's power that
// must sign a header to skip to it; within [1/3, 1], default 1/3.
func WithTrustLevel(f cmtmath.Fraction) Option { return func(c *config) { c.trustLevel = f } }

// WithMaxClockDrift sets how far in the future a header's time may be
// (default DefaultMaxClockDrift).
func WithMaxClockDrift(d time.Duration) Option { return func(c *config) { c.maxClockDrift = d } }

// WithTrustingPeriod sets the trusting period of a restored client (default
// DefaultTrustingPeriod). New takes it from TrustOptions.Period instead.
func WithTrustingPeriod(d time.Duration) Option { return func(c *config) { c.trustingPeriod = d } }

// WithHeaderWait sets how long VerifyTo and VerifyProof wait for a height
// the source has not committed yet (default DefaultHeaderWait; 0: no wait).
func WithHeaderWait(d time.Duration) Option { return func(c *config) { c.headerWait = d } }

// WithMaxBackwards sets how many headers backwards verification may fetch
// to reach a height below the trusted one (default DefaultMaxBackwards; 0:
// no backwards verification). Heights further back are refused with
// ErrBelowTrusted.
func WithMaxBackwards(n int64) Option { return func(c *config) { c.maxBackwards = n } }
