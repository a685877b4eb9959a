package lightclient

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/types"

	"github.com/thingnet/thingnet/chain"
)

// signFunc signs vote sign bytes as the validator at addr.
type signFunc func(addr types.Address, msg []byte) ([]byte, error)

// forge returns h signed by every validator of vals: a header that is
// internally consistent (its commit signs its hash with vals' keys).
func forge(h types.Header, vals *types.ValidatorSet, psh types.PartSetHeader, sign signFunc) (*types.SignedHeader, error) {
	h.ValidatorsHash = vals.Hash()
	commit := &types.Commit{Height: h.Height, BlockID: types.BlockID{Hash: h.Hash(), PartSetHeader: psh}}
	for _, v := range vals.Validators {
		commit.Signatures = append(commit.Signatures, types.CommitSig{
			BlockIDFlag: types.BlockIDFlagCommit, ValidatorAddress: v.Address, Timestamp: h.Time,
		})
	}
	for i, v := range vals.Validators {
		sig, err := sign(v.Address, commit.VoteSignBytes(h.ChainID, int32(i)))
		if err != nil {
			return nil, err
		}
		commit.Signatures[i].Signature = sig
	}
	return &types.SignedHeader{Header: &h, Commit: commit}, nil
}

// freshValidators is a validator set of n new keys, none of the chain's.
func freshValidators(n int) (*types.ValidatorSet, signFunc) {
	keys := map[string]ed25519.PrivKey{}
	var vals []*types.Validator
	for range n {
		k := ed25519.GenPrivKey()
		keys[string(k.PubKey().Address())] = k
		vals = append(vals, types.NewValidator(k.PubKey(), 10))
	}
	return types.NewValidatorSet(vals), func(addr types.Address, msg []byte) ([]byte, error) {
		return keys[string(addr)].Sign(msg)
	}
}

// nodeSigner signs with the consensus keys of the test net's validators.
func (tn *testNet) nodeSigner(t *testing.T) signFunc {
	t.Helper()
	homes := map[string]string{}
	for i := range tn.clients {
		pub, _, err := chain.SignWithValidatorKey(tn.home(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		homes[string(ed25519.PubKey(pub).Address())] = tn.home(i)
	}
	return func(addr types.Address, msg []byte) ([]byte, error) {
		home, ok := homes[string(addr)]
		if !ok {
			return nil, fmt.Errorf("no node has validator %s", addr)
		}
		_, sig, err := chain.SignWithValidatorKey(home, msg)
		return sig, err
	}
}

// liar passes headers through from an honest source, rewriting those above
// height from with lie.
type liar struct {
	Source
	from int64
	lie  func(sh *types.SignedHeader, vals *types.ValidatorSet) (*types.SignedHeader, *types.ValidatorSet, error)
}

func (l *liar) Header(ctx context.Context, height int64) (*types.SignedHeader, *types.ValidatorSet, error) {
	sh, vals, err := l.Source.Header(ctx, height)
	if err != nil || sh.Height < l.from {
		return sh, vals, err
	}
	return l.lie(sh, vals)
}

// lieAt passes headers through from an honest source, rewriting the one of
// height at with lie.
type lieAt struct {
	Source
	at  int64
	lie func(sh *types.SignedHeader, vals *types.ValidatorSet) (*types.SignedHeader, *types.ValidatorSet, error)
}

func (l *lieAt) Header(ctx context.Context, height int64) (*types.SignedHeader, *types.ValidatorSet, error) {
	sh, vals, err := l.Source.Header(ctx, height)
	if err != nil || sh.Height != l.at {
		return sh, vals, err
	}
	return l.lie(sh, vals)
}

// relinkAppHash changes the app hash and makes the commit name the new
// header (its signatures, which backwards verification does not check, are
// left as they are): a header consistent with its commit, but not the one
// the next header links to.
func relinkAppHash(sh *types.SignedHeader, vals *types.ValidatorSet) (*types.SignedHeader, *types.ValidatorSet, error) {
	h := *sh.Header
	h.AppHash = bytes.Repeat([]byte{0xAB}, 32)
	commit := *sh.Commit
	commit.BlockID.Hash = h.Hash()
	return &types.SignedHeader{Header: &h, Commit: &commit}, vals, nil
}

// tamperAppHash changes the app hash and keeps the validators' commit.
func tamperAppHash(sh *types.SignedHeader, vals *types.ValidatorSet) (*types.SignedHeader, *types.ValidatorSet, error) {
	h := *sh.Header
	h.AppHash = bytes.Repeat([]byte{0xAA}, 32)
	return &types.SignedHeader{Header: &h, Commit: sh.Commit}, vals, nil
}

// signedByStrangers claims a new validator set of fresh keys that signs a
// header with a false app hash.
func signedByStrangers(sh *types.SignedHeader, _ *types.ValidatorSet) (*types.SignedHeader, *types.ValidatorSet, error) {
	vals, sign := freshValidators(4)
	h := *sh.Header
	h.AppHash = bytes.Repeat([]byte{0xBB}, 32)
	h.NextValidatorsHash = vals.Hash()
	forged, err := forge(h, vals, sh.Commit.BlockID.PartSetHeader, sign)
	return forged, vals, err
}

// otherChain re-signs a header as a block of another chain, with the
// chain's own validator keys (validators that reuse keys across chains).
func otherChain(sign signFunc) func(*types.SignedHeader, *types.ValidatorSet) (*types.SignedHeader, *types.ValidatorSet, error) {
	return func(sh *types.SignedHeader, vals *types.ValidatorSet) (*types.SignedHeader, *types.ValidatorSet, error) {
		h := *sh.Header
		h.ChainID = "another-chain"
		h.AppHash = bytes.Repeat([]byte{0xCC}, 32)
		forged, err := forge(h, vals, sh.Commit.BlockID.PartSetHeader, sign)
		return forged, vals, err
	}
}

// counting counts the headers fetched.
type counting struct {
	Source
	n atomic.Int64
}

func (c *counting) Header(ctx context.Context, height int64) (*types.SignedHeader, *types.ValidatorSet, error) {
	c.n.Add(1)
	return c.Source.Header(ctx, height)
}
