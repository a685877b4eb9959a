package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/record"
)

// VerifiedProof says what a proof was checked against.
type VerifiedProof struct {
	Height     int64  // state height of the proof
	Header     int64  // header that carries its app hash (Height+1)
	AppHash    []byte // the app hash
	Validators int    // size of the validator set that signed the header
}

// VerifyProof checks a proof end to end: the header of height p.Height+1
// is signed by more than 2/3 of its validator set (whose hash it carries),
// its app hash equals the proof's root, and the proof shows the value (or
// absence) under that root. The validator set comes from the node; a device
// that must trust no node pins it with the light client instead.
func (c *Client) VerifyProof(ctx context.Context, chainID string, p *record.Proof) (*VerifiedProof, error) {
	h, err := c.waitHeader(ctx, p.Height+1)
	if err != nil {
		return nil, fmt.Errorf("fetching the header that carries the app hash of height %d: %w", p.Height, err)
	}
	sh := h.SignedHeader
	if err := sh.ValidateBasic(chainID); err != nil {
		return nil, fmt.Errorf("header %d: %w", sh.Height, err)
	}
	vals := types.NewValidatorSet(h.Validators)
	if !bytes.Equal(vals.Hash(), sh.ValidatorsHash) {
		return nil, fmt.Errorf("header %d: the validator set does not match the header's validators hash", sh.Height)
	}
	if err := vals.VerifyCommitLight(chainID, sh.Commit.BlockID, sh.Height, sh.Commit); err != nil {
		return nil, fmt.Errorf("header %d is not signed by 2/3 of its validators: %w", sh.Height, err)
	}
	if !bytes.Equal(sh.AppHash, p.Root) {
		return nil, fmt.Errorf("the proof's root %X is not the app hash %X of header %d", p.Root, []byte(sh.AppHash), sh.Height)
	}
	if err := record.VerifyProof(p.Root, p.Key, p.Value, p.Proof); err != nil {
		return nil, err
	}
	return &VerifiedProof{Height: p.Height, Header: sh.Height, AppHash: sh.AppHash, Validators: vals.Size()}, nil
}

// waitHeader fetches a header, waiting up to 15 s for it to be committed
// (a proof of the latest state checks against the next block's header).
func (c *Client) waitHeader(ctx context.Context, height int64) (*HeaderResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		h, err := c.Header(ctx, height)
		if err == nil {
			return h, nil
		}
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusNotFound {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("header %d was not committed in time: %w", height, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
