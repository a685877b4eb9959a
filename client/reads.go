package client

import (
	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/record"
)

// HeaderResponse is a signed header with the validator set that signed it.
type HeaderResponse struct {
	SignedHeader types.SignedHeader `json:"signed_header"`
	Validators   []*types.Validator `json:"validators"`
}

// Record is a state record, with a proof when ?prove=true.
type Record struct {
	Height int64         `json:"height"`
	Record any           `json:"record"`
	Proof  *record.Proof `json:"proof,omitempty"`
}

// Page is a list response; Next is the value of ?after= for the next page ("" at the end).
type Page struct {
	Height int64  `json:"height"`
	Items  any    `json:"items"`
	Next   string `json:"next,omitempty"`
}

// Nonce is the answer of GET /v1/accounts/{id}/nonce.
type Nonce struct {
	Height int64  `json:"height"`
	Nonce  uint64 `json:"nonce"` // last used; the next tx uses a larger one
}
