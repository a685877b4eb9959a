package client

import "time"

// Status is the answer of GET /v1/status.
type Status struct {
	ChainID    string    `json:"chain_id"`
	NodeID     string    `json:"node_id"`
	Moniker    string    `json:"moniker"`
	Height     int64     `json:"height"`
	BlockTime  time.Time `json:"block_time"`
	AppHeight  int64     `json:"app_height"`
	CatchingUp bool      `json:"catching_up"`
	Validator  string    `json:"validator_address"`
}

// SubmitRequest is the JSON form of POST /v1/txs; the raw COSE bytes may
// also be posted as the body with Content-Type application/cose.
type SubmitRequest struct {
	Tx []byte `json:"tx"` // base64 in JSON
}

// SubmitResult is the answer of POST /v1/txs.
type SubmitResult struct {
	Hash   string `json:"hash"`
	Height int64  `json:"height,omitempty"` // with ?wait=commit
	Code   uint32 `json:"code"`
	Reason string `json:"reason"`
	Log    string `json:"log,omitempty"`
	Events any    `json:"events,omitempty"`
}

// TxInfo is a committed transaction.
type TxInfo struct {
	Hash   string `json:"hash"`
	Height int64  `json:"height"`
	Index  uint32 `json:"index"`
	Code   uint32 `json:"code"`
	Reason string `json:"reason"`
	Log    string `json:"log,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Signer string `json:"signer,omitempty"`
	Nonce  uint64 `json:"nonce,omitempty"`
	Msg    any    `json:"msg,omitempty"`
	Events any    `json:"events,omitempty"`
	Tx     []byte `json:"tx"`
}

// BlockInfo is a block summary.
type BlockInfo struct {
	Height   int64     `json:"height"`
	Hash     string    `json:"hash"`
	Time     time.Time `json:"time"`
	Proposer string    `json:"proposer"`
	AppHash  string    `json:"app_hash"`
	Txs      []string  `json:"txs"`
}
