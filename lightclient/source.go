package lightclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/client"
)

// Source is where headers come from: a node, a gateway, a peer. It is not
// trusted; every header it returns is verified.
type Source interface {
	// Header returns the signed header of height (0: the latest) and the
	// validator set that signed it. A height not committed (yet) or no
	// longer kept is reported with an error wrapping ErrHeaderNotFound.
	// Build the set with types.NewValidatorSet (it sets the proposer).
	Header(ctx context.Context, height int64) (*types.SignedHeader, *types.ValidatorSet, error)
}

// APISource adapts a node API client (GET /v1/headers/{height}) to a Source.
func APISource(c *client.Client) Source { return apiSource{c} }

type apiSource struct{ c *client.Client }

func (s apiSource) Header(ctx context.Context, height int64) (*types.SignedHeader, *types.ValidatorSet, error) {
	if height < 0 {
		return nil, nil, fmt.Errorf("lightclient: negative height %d", height)
	}
	var h *client.HeaderResponse
	var err error
	if height == 0 {
		h, err = s.latest(ctx)
	} else {
		h, err = s.c.Header(ctx, height)
	}
	var e *client.Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return nil, nil, fmt.Errorf("%w: %s: height %d: %v", ErrHeaderNotFound, s.c.BaseURL, height, err)
	}
	if err != nil {
		return nil, nil, err
	}
	vals, err := validatorSet(h.Validators)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: validators of height %d: %v", ErrBadHeader, s.c.BaseURL, height, err)
	}
	return &h.SignedHeader, vals, nil
}

func (s apiSource) latest(ctx context.Context) (*client.HeaderResponse, error) {
	var raw []byte
	if err := s.c.Get(ctx, "/v1/headers/latest", &raw); err != nil {
		return nil, err
	}
	var h client.HeaderResponse
	if err := cmtjson.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("%w: %s: decoding the latest header: %v", ErrBadHeader, s.c.BaseURL, err)
	}
	return &h, nil
}

// validatorSet builds a validator set from a list a source sent, refusing
// what would make types.NewValidatorSet panic (duplicates, non-positive or
// excessive power) and sets too large to be a real one.
func validatorSet(vals []*types.Validator) (*types.ValidatorSet, error) {
	if len(vals) == 0 {
		return nil, errors.New("the validator set is empty")
	}
	if len(vals) > types.MaxVotesCount {
		return nil, fmt.Errorf("%d validators is more than CometBFT allows (%d)", len(vals), types.MaxVotesCount)
	}
	seen := make(map[string]bool, len(vals))
	var total int64
	for i, v := range vals {
		if v == nil {
			return nil, fmt.Errorf("validator %d is missing", i)
		}
		if err := v.ValidateBasic(); err != nil {
			return nil, fmt.Errorf("validator %d: %w", i, err)
		}
		if v.VotingPower <= 0 || v.VotingPower > types.MaxTotalVotingPower-total {
			return nil, fmt.Errorf("validator %d: voting power %d is out of range", i, v.VotingPower)
		}
		total += v.VotingPower
		if seen[string(v.Address)] {
			return nil, fmt.Errorf("validator %d: %s appears twice", i, v.Address)
		}
		seen[string(v.Address)] = true
	}
	return types.NewValidatorSet(vals), nil
}
