package lightclient

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	cmtmath "github.com/cometbft/cometbft/libs/math"
	"github.com/cometbft/cometbft/types"
)

// The header checks of CometBFT's light/verifier.go (v0.38), the same
// checks with the same messages, over the commit checks in its types
// package (VerifyCommitLight, VerifyCommitLightTrusting). The light package
// itself is not imported: its HTTP provider links CometBFT's RPC client and
// through it the p2p package, which a device has no use for.

// defaultTrustLevel: a new header can be trusted if at least one correct
// validator signed it.
var defaultTrustLevel = cmtmath.Fraction{Numerator: 1, Denominator: 3}

// errOldHeaderExpired: the trusted header is older than the trusting
// period.
type errOldHeaderExpired struct {
	At  time.Time
	Now time.Time
}

func (e errOldHeaderExpired) Error() string {
	return fmt.Sprintf("old header has expired at %v (now: %v)", e.At, e.Now)
}

// errNewValSetCantBeTrusted: less than the trust level of the trusted
// validators signed the new header; bisection may still reach it.
type errNewValSetCantBeTrusted struct {
	Reason types.ErrNotEnoughVotingPowerSigned
}

func (e errNewValSetCantBeTrusted) Error() string {
	return fmt.Sprintf("cant trust new val set: %v", e.Reason)
}

// errInvalidHeader: the new header is not valid, or not signed by more
// than 2/3 of its own validators.
type errInvalidHeader struct {
	Reason error
}

func (e errInvalidHeader) Error() string {
	return fmt.Sprintf("invalid header: %v", e.Reason)
}

// verify is light.Verify: verifyAdjacent for the next height, else
// verifyNonAdjacent.
func verify(trustedHeader *types.SignedHeader, trustedVals *types.ValidatorSet, untrustedHeader *types.SignedHeader,
	untrustedVals *types.ValidatorSet, trustingPeriod time.Duration, now time.Time, maxClockDrift time.Duration,
	trustLevel cmtmath.Fraction) error {
	if untrustedHeader.Height != trustedHeader.Height+1 {
		return verifyNonAdjacent(trustedHeader, trustedVals, untrustedHeader, untrustedVals,
			trustingPeriod, now, maxClockDrift, trustLevel)
	}
	return verifyAdjacent(trustedHeader, untrustedHeader, untrustedVals, trustingPeriod, now, maxClockDrift)
}

// verifyNonAdjacent checks that the trusted header has not expired, that
// the untrusted one is valid, that trustLevel of the trusted validators
// signed it, and, last (the untrusted set may be made large to cost the
// client work), that more than 2/3 of its own validators did.
func verifyNonAdjacent(trustedHeader *types.SignedHeader, trustedVals *types.ValidatorSet, untrustedHeader *types.SignedHeader,
	untrustedVals *types.ValidatorSet, trustingPeriod time.Duration, now time.Time, maxClockDrift time.Duration,
	trustLevel cmtmath.Fraction) error {
	if untrustedHeader.Height == trustedHeader.Height+1 {
		return errors.New("headers must be non adjacent in height")
	}
	if headerExpired(trustedHeader, trustingPeriod, now) {
		return errOldHeaderExpired{trustedHeader.Time.Add(trustingPeriod), now}
	}
	if err := verifyNewHeaderAndVals(untrustedHeader, untrustedVals, trustedHeader, now, maxClockDrift); err != nil {
		return errInvalidHeader{err}
	}
	err := trustedVals.VerifyCommitLightTrusting(trustedHeader.ChainID, untrustedHeader.Commit, trustLevel)
	if err != nil {
		if e, ok := err.(types.ErrNotEnoughVotingPowerSigned); ok { // the exact type, as light.VerifyNonAdjacent
			return errNewValSetCantBeTrusted{e}
		}
		return err
	}
	if err := untrustedVals.VerifyCommitLight(trustedHeader.ChainID, untrustedHeader.Commit.BlockID,
		untrustedHeader.Height, untrustedHeader.Commit); err != nil {
		return errInvalidHeader{err}
	}
	return nil
}

// verifyAdjacent checks that the trusted header has not expired, that the
// untrusted one is valid, is signed by the validators the trusted one
// named next, and by more than 2/3 of them.
func verifyAdjacent(trustedHeader *types.SignedHeader, untrustedHeader *types.SignedHeader, untrustedVals *types.ValidatorSet,
	trustingPeriod time.Duration, now time.Time, maxClockDrift time.Duration) error {
	if untrustedHeader.Height != trustedHeader.Height+1 {
		return errors.New("headers must be adjacent in height")
	}
	if headerExpired(trustedHeader, trustingPeriod, now) {
		return errOldHeaderExpired{trustedHeader.Time.Add(trustingPeriod), now}
	}
	if err := verifyNewHeaderAndVals(untrustedHeader, untrustedVals, trustedHeader, now, maxClockDrift); err != nil {
		return errInvalidHeader{err}
	}
	if !bytes.Equal(untrustedHeader.ValidatorsHash, trustedHeader.NextValidatorsHash) {
		return fmt.Errorf("expected old header next validators (%X) to match those from new header (%X)",
			trustedHeader.NextValidatorsHash, untrustedHeader.ValidatorsHash)
	}
	if err := untrustedVals.VerifyCommitLight(trustedHeader.ChainID, untrustedHeader.Commit.BlockID,
		untrustedHeader.Height, untrustedHeader.Commit); err != nil {
		return errInvalidHeader{err}
	}
	return nil
}

func verifyNewHeaderAndVals(untrustedHeader *types.SignedHeader, untrustedVals *types.ValidatorSet,
	trustedHeader *types.SignedHeader, now time.Time, maxClockDrift time.Duration) error {
	if err := untrustedHeader.ValidateBasic(trustedHeader.ChainID); err != nil {
		return fmt.Errorf("untrustedHeader.ValidateBasic failed: %w", err)
	}
	if untrustedHeader.Height <= trustedHeader.Height {
		return fmt.Errorf("expected new header height %d to be greater than one of old header %d",
			untrustedHeader.Height, trustedHeader.Height)
	}
	if !untrustedHeader.Time.After(trustedHeader.Time) {
		return fmt.Errorf("expected new header time %v to be after old header time %v",
			untrustedHeader.Time, trustedHeader.Time)
	}
	if !untrustedHeader.Time.Before(now.Add(maxClockDrift)) {
		return fmt.Errorf("new header has a time from the future %v (now: %v; max clock drift: %v)",
			untrustedHeader.Time, now, maxClockDrift)
	}
	if !bytes.Equal(untrustedHeader.ValidatorsHash, untrustedVals.Hash()) {
		return fmt.Errorf("expected new header validators (%X) to match those that were supplied (%X) at height %d",
			untrustedHeader.ValidatorsHash, untrustedVals.Hash(), untrustedHeader.Height)
	}
	return nil
}

// validateTrustLevel checks that lvl is within [1/3, 1]: 1/3 is the least
// trust that does not break the security model.
func validateTrustLevel(lvl cmtmath.Fraction) error {
	if lvl.Numerator*3 < lvl.Denominator || // < 1/3
		lvl.Numerator > lvl.Denominator || // > 1
		lvl.Denominator == 0 {
		return fmt.Errorf("trustLevel must be within [1/3, 1], given %v", lvl)
	}
	return nil
}

// headerExpired reports whether h is at least trustingPeriod old at now.
func headerExpired(h *types.SignedHeader, trustingPeriod time.Duration, now time.Time) bool {
	return !h.Time.Add(trustingPeriod).After(now)
}

// verifyBackwards checks a header one below a trusted one: valid, of the
// same chain, older, and the one the trusted header's LastBlockID names.
func verifyBackwards(untrustedHeader, trustedHeader *types.Header) error {
	if err := untrustedHeader.ValidateBasic(); err != nil {
		return errInvalidHeader{err}
	}
	if untrustedHeader.ChainID != trustedHeader.ChainID {
		return errInvalidHeader{errors.New("header belongs to another chain")}
	}
	if !untrustedHeader.Time.Before(trustedHeader.Time) {
		return errInvalidHeader{fmt.Errorf("expected older header time %v to be before new header time %v",
			untrustedHeader.Time, trustedHeader.Time)}
	}
	if !bytes.Equal(untrustedHeader.Hash(), trustedHeader.LastBlockID.Hash) {
		return errInvalidHeader{fmt.Errorf("older header hash %X does not match trusted header's last block %X",
			untrustedHeader.Hash(), trustedHeader.LastBlockID.Hash)}
	}
	return nil
}
