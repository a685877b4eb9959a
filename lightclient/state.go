package lightclient

import (
	"errors"
	"fmt"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"
)

// stateVersion is the first byte of an encoded State.
const stateVersion = 1

// State is what a device persists: the trusted signed header and the
// validator set of its height. Its size depends on the number of
// validators only, never on the length of the ledger.
type State struct {
	ChainID    string
	Header     *types.SignedHeader
	Validators *types.ValidatorSet
}

// MarshalBinary encodes the state as one version byte (1) followed by a
// protobuf tendermint.types.LightBlock (the chain id is the header's).
func (s *State) MarshalBinary() ([]byte, error) {
	if s == nil || s.Header == nil || s.Header.Header == nil || s.Validators == nil {
		return nil, fmt.Errorf("%w: the header or the validator set is missing", ErrBadState)
	}
	if s.ChainID != s.Header.ChainID {
		return nil, fmt.Errorf("%w: chain %q, but the header is of %q", ErrBadState, s.ChainID, s.Header.ChainID)
	}
	lb := types.LightBlock{SignedHeader: s.Header, ValidatorSet: s.Validators}
	pb, err := lb.ToProto()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadState, err)
	}
	b := make([]byte, 1+pb.Size())
	b[0] = stateVersion
	if _, err := pb.MarshalToSizedBuffer(b[1:]); err != nil {
		return nil, fmt.Errorf("%w: encoding: %v", ErrBadState, err)
	}
	return b, nil
}

// UnmarshalBinary decodes a state written by MarshalBinary and checks that
// it is consistent: a valid header, signed by more than 2/3 of the
// validator set it carries.
func (s *State) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty", ErrBadState)
	}
	if b[0] != stateVersion {
		return fmt.Errorf("%w: format version %d, want %d", ErrBadState, b[0], stateVersion)
	}
	var pb cmtproto.LightBlock
	if err := pb.Unmarshal(b[1:]); err != nil {
		return fmt.Errorf("%w: decoding: %v", ErrBadState, err)
	}
	if pb.SignedHeader == nil || pb.SignedHeader.Header == nil || pb.ValidatorSet == nil {
		return fmt.Errorf("%w: the header or the validator set is missing", ErrBadState)
	}
	lb, err := types.LightBlockFromProto(&pb)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadState, err)
	}
	// Self-consistency only: whether the header is the right one was
	// settled when it became trusted.
	if err := checkLightBlock(lb.ChainID, lb.SignedHeader, lb.ValidatorSet); err != nil {
		return fmt.Errorf("%w: %v", ErrBadState, err)
	}
	*s = State{ChainID: lb.ChainID, Header: lb.SignedHeader, Validators: lb.ValidatorSet}
	return nil
}

// checkLightBlock checks that a header is well formed, of chainID, and
// signed by more than 2/3 of vals, whose hash it carries.
func checkLightBlock(chainID string, sh *types.SignedHeader, vals *types.ValidatorSet) error {
	if sh == nil || vals == nil {
		return errors.New("the header or the validator set is missing")
	}
	if err := (types.LightBlock{SignedHeader: sh, ValidatorSet: vals}).ValidateBasic(chainID); err != nil {
		return err
	}
	if err := vals.VerifyCommitLight(chainID, sh.Commit.BlockID, sh.Height, sh.Commit); err != nil {
		return fmt.Errorf("header %d is not signed by its validators: %w", sh.Height, err)
	}
	return nil
}
