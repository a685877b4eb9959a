package record

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"
	"github.com/thingnet/thingnet/identity"
)

// MaxTxBytes is the largest transaction the ledger accepts.
const MaxTxBytes = 64 << 10

// Body is the signed payload of a transaction: a CBOR map with integer keys.
// The COSE_Sign1 envelope's kid must equal Signer.
type Body struct {
	ChainID string          `cbor:"1,keyasint"`
	Signer  string          `cbor:"2,keyasint"` // account id: a did:key, or a registered device's id
	Nonce   uint64          `cbor:"3,keyasint"` // exactly one above the signer's last nonce
	Expiry  int64           `cbor:"4,keyasint"` // last block height at which the tx may be included
	Kind    string          `cbor:"5,keyasint"` // one of the Kind* constants
	Msg     cbor.RawMessage `cbor:"6,keyasint"` // the kind's message, a CBOR map
}

// Tx is a decoded (not yet verified) transaction.
type Tx struct {
	Body
	Hash     [32]byte // SHA-256 of the raw bytes, as CometBFT computes it
	Envelope *identity.Sign1
	Msg      Msg
}

// HashHex is the tx hash as CometBFT prints it (upper-case hex).
func (t *Tx) HashHex() string { return fmt.Sprintf("%X", t.Hash[:]) }

// DecodeTx parses raw tx bytes: the COSE_Sign1 envelope, its body, and the
// kind's message, and checks everything that needs no state. It never verifies
// the signature (that needs the signer's key from state).
func DecodeTx(raw []byte) (*Tx, error) {
	if len(raw) > MaxTxBytes {
		return nil, Errf(CodeTooLarge, "tx is %d bytes; the limit is %d", len(raw), MaxTxBytes)
	}
	env, err := identity.DecodeSign1(raw)
	if err != nil {
		return nil, Errf(CodeMalformed, "%v", err)
	}
	tx := &Tx{Hash: sha256.Sum256(raw), Envelope: env}
	if err := Unmarshal(env.Payload, &tx.Body); err != nil {
		return nil, Errf(CodeMalformed, "tx body: %v", err)
	}
	if tx.Signer == "" {
		return nil, Errf(CodeMalformed, "tx body has no signer")
	}
	if env.KID != tx.Signer {
		return nil, Errf(CodeMalformed, "cose kid %q differs from the tx signer %q", env.KID, tx.Signer)
	}
	if tx.Nonce == 0 {
		return nil, Errf(CodeMalformed, "nonce must be 1 or more")
	}
	if tx.Expiry <= 0 {
		return nil, Errf(CodeMalformed, "expiry height must be 1 or more")
	}
	newMsg, ok := msgTypes[tx.Kind]
	if !ok {
		return nil, Errf(CodeUnknownKind, "unknown tx kind %q (known: %s)", tx.Kind, strings.Join(Kinds(), ", "))
	}
	m := newMsg()
	if len(tx.Body.Msg) == 0 {
		return nil, Errf(CodeMalformed, "%s: tx has no message", tx.Kind)
	}
	if err := Unmarshal(tx.Body.Msg, m); err != nil {
		return nil, Errf(CodeMalformed, "%s message: %v", tx.Kind, err)
	}
	if err := m.ValidateBasic(); err != nil {
		return nil, Errf(CodeInvalid, "%s: %v", tx.Kind, err)
	}
	tx.Msg = m
	return tx, nil
}

// NewTx builds and signs a transaction. signer is the account id written in
// the body and the COSE kid (a did:key, or the device id of a rotated device).
func NewTx(key *identity.Key, signer, chainID string, nonce uint64, expiry int64, m Msg) ([]byte, error) {
	if signer == "" {
		signer = key.ID()
	}
	msg, err := Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %s message: %w", m.Kind(), err)
	}
	body, err := Marshal(Body{ChainID: chainID, Signer: signer, Nonce: nonce, Expiry: expiry, Kind: m.Kind(), Msg: msg})
	if err != nil {
		return nil, fmt.Errorf("encoding tx body: %w", err)
	}
	return identity.SignCOSE(key, signer, body, nil)
}
