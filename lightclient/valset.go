package lightclient

import "github.com/cometbft/cometbft/types"

// ValidatorSet builds a validator set from a list an untrusted party sent
// (a node's GET /v1/headers answer, an audit bundle), refusing what would
// make types.NewValidatorSet panic (duplicates, non-positive or excessive
// power) and sets larger than CometBFT allows. A Source builds its sets
// with it.
func ValidatorSet(vals []*types.Validator) (*types.ValidatorSet, error) { return validatorSet(vals) }
