package ledger

import (
	"context"
	"errors"
	"fmt"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	"github.com/cosmos/iavl"
	ics23 "github.com/cosmos/ics23/go"
	"github.com/thingnet/thingnet/record"
)

// ProofOpType names the proof format in ABCI query responses.
const ProofOpType = "ics23:iavl"

// ErrNoState is returned by reads before the first block is committed.
var ErrNoState = errors.New("the ledger has no committed state yet")

// View returns the committed state at height (0 = latest), for reads.
func (a *App) View(height int64) (*State, error) {
	t, err := a.version(height)
	if err != nil {
		return nil, err
	}
	return &State{r: t, Height: t.Version()}, nil
}

func (a *App) version(height int64) (*iavl.ImmutableTree, error) {
	a.mu.RLock()
	latest := a.committed
	a.mu.RUnlock()
	if latest == nil {
		return nil, ErrNoState
	}
	if height == 0 || height == latest.Version() {
		return latest, nil
	}
	if height > latest.Version() {
		return nil, fmt.Errorf("height %d is above the last committed height %d", height, latest.Version())
	}
	t, err := a.reads.GetImmutable(height)
	if err != nil {
		return nil, fmt.Errorf("state at height %d is not kept (pruned or never existed): %w", height, err)
	}
	return t, nil
}

// Height returns the last committed height.
func (a *App) Height() int64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.committed == nil {
		return 0
	}
	return a.committed.Version()
}

// ChainID returns the chain id.
func (a *App) ChainID() string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.chainID
}

// Prove returns key's value at height (0 = latest) with an inclusion or absence proof.
func (a *App) Prove(key []byte, height int64) (*record.Proof, error) {
	t, err := a.version(height)
	if err != nil {
		return nil, err
	}
	val, err := t.Get(key)
	if err != nil {
		return nil, err
	}
	var cp *ics23.CommitmentProof
	if val != nil {
		cp, err = t.GetMembershipProof(key)
	} else {
		cp, err = t.GetNonMembershipProof(key)
	}
	if err != nil {
		return nil, fmt.Errorf("building proof of %q at height %d: %w", key, t.Version(), err)
	}
	pb, err := cp.Marshal()
	if err != nil {
		return nil, err
	}
	return &record.Proof{Height: t.Version(), Key: key, Value: val, Root: t.Hash(), Proof: pb}, nil
}

// Query serves ABCI queries. Path "/key": Data is a state key; with Prove
// the response carries an ics23:iavl proof op. Path "/nonce": Data is a
// signer id; the value is the last nonce as 8 bytes big-endian.
func (a *App) Query(_ context.Context, req *abci.RequestQuery) (*abci.ResponseQuery, error) {
	key := req.Data
	switch req.Path {
	case "/key", "/store", "":
	case "/nonce":
		key = record.NonceKey(string(req.Data))
	default:
		return &abci.ResponseQuery{Code: uint32(record.CodeInvalid), Log: fmt.Sprintf("unknown query path %q (known: /key, /nonce)", req.Path), Codespace: record.Codespace}, nil
	}
	p, err := a.Prove(key, req.Height)
	if err != nil {
		return &abci.ResponseQuery{Code: uint32(record.CodeNotFound), Log: err.Error(), Codespace: record.Codespace}, nil
	}
	res := &abci.ResponseQuery{Key: key, Value: p.Value, Height: p.Height}
	if req.Prove {
		res.ProofOps = &cmtcrypto.ProofOps{Ops: []cmtcrypto.ProofOp{{Type: ProofOpType, Key: key, Data: p.Proof}}}
	}
	return res, nil
}
