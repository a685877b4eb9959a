package record

import (
	"errors"
	"fmt"
)

// Codespace is the ABCI codespace of every error the ledger returns.
const Codespace = "thingnet"

// Code is an ABCI result code. 0 is success; each rejection reason has its
// own code so that clients (and metrics) can tell them apart.
type Code uint32

// Result codes. They are part of the wire protocol: never renumber.
const (
	CodeOK            Code = 0
	CodeMalformed     Code = 1  // not a COSE_Sign1 envelope over a valid tx body
	CodeTooLarge      Code = 2  // tx exceeds MaxTxBytes
	CodeWrongChain    Code = 3  // chain id differs
	CodeExpired       Code = 4  // expiry height passed
	CodeUnknownKind   Code = 5  // kind not known to this ledger
	CodeUnknownSigner Code = 6  // signer is neither a did:key nor a registered device
	CodeBadSignature  Code = 7  // signature does not verify with the signer's active key
	CodeBadNonce      Code = 8  // nonce not above the signer's last nonce (replay)
	CodeInactive      Code = 9  // signer is a suspended or revoked device
	CodeInvalid       Code = 10 // message fields invalid
	CodeUnauthorized  Code = 11 // signer may not do this
	CodeNotFound      Code = 12 // referenced record does not exist
	CodeConflict      Code = 13 // record already exists or state forbids the change
	CodeOverBudget    Code = 14 // the signer's organisation spent its share of the mempool or block (governance.go)

	CodeCount = 15 // one more than the highest code
)

var codeNames = map[Code]string{
	CodeOK: "ok", CodeMalformed: "malformed", CodeTooLarge: "too_large", CodeWrongChain: "wrong_chain",
	CodeExpired: "expired", CodeUnknownKind: "unknown_kind", CodeUnknownSigner: "unknown_signer",
	CodeBadSignature: "bad_signature", CodeBadNonce: "bad_nonce", CodeInactive: "inactive_signer",
	CodeInvalid: "invalid", CodeUnauthorized: "unauthorized", CodeNotFound: "not_found", CodeConflict: "conflict",
	CodeOverBudget: "over_budget",
}

// String returns the short reason name used in logs and metrics.
func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code_%d", uint32(c))
}

// Error is a rejection with its ABCI code.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return e.Code.String() + ": " + e.Msg }

func Errf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err: CodeOK for nil, the code of a wrapped
// *Error, and CodeInvalid for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInvalid
}
