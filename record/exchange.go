package record

import (
	"errors"
	"fmt"
)

// KindExchangeAnchor records the digest of a message exchange between two
// devices on the ledger, so that an agreement or an auditor can later be
// shown that a message was part of it.
const KindExchangeAnchor = "exchange.anchor"

const prefixExchange = "xa/" // xa/<root, 32 bytes> -> Exchange

// ExchangeKey is the state key of an anchored exchange.
func ExchangeKey(root []byte) []byte { return append([]byte(prefixExchange), root...) }

// ExchangeAnchor is signed by one party of an exchange (the sender or the
// receiver device). Root is the RFC 6962 Merkle root of the SHA-256 hashes
// of the signed messages, in the order the receiver's receipts list them
// (mesh.ExchangeRoot); Count is how many.
type ExchangeAnchor struct {
	Peer  string `cbor:"1,keyasint"` // the other device
	Root  []byte `cbor:"2,keyasint"` // 32 bytes
	Count uint64 `cbor:"3,keyasint"`
}

func (*ExchangeAnchor) Kind() string { return KindExchangeAnchor }

func (m *ExchangeAnchor) ValidateBasic() error {
	if err := checkDIDSyntax(m.Peer); err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	if len(m.Root) != 32 {
		return fmt.Errorf("root is %d bytes; want a 32-byte RFC 6962 root", len(m.Root))
	}
	if m.Count == 0 {
		return errors.New("an exchange has at least one message")
	}
	return nil
}

// Exchange is an anchored message exchange.
type Exchange struct {
	By     string `cbor:"1,keyasint" json:"by"`
	Peer   string `cbor:"2,keyasint" json:"peer"`
	Root   []byte `cbor:"3,keyasint" json:"root"`
	Count  uint64 `cbor:"4,keyasint" json:"count"`
	Height int64  `cbor:"5,keyasint" json:"height"`
}
