package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Credit tx kinds.
const (
	KindCreditTransfer = "credit.transfer"
	KindCreditMint     = "credit.mint"
)

// State keys of credits.
const (
	prefixBalance     = "cb/" // cb/<account> -> u64 BE balance
	PrefixTransfer    = "ct/" // ct/<seq u64 BE> -> Transfer
	PrefixTransferIdx = "cx/" // cx/<account>/<seq u64 BE> -> marker (an account's transfers)
	KeyTransferSeq    = "m/transferseq"
	KeyMintSeq        = "m/mintseq"
)

// BalanceKey is the state key of an account's balance.
func BalanceKey(account string) []byte { return []byte(prefixBalance + account) }

// TransferKey is the state key of a transfer record.
func TransferKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(PrefixTransfer), seq)
}

// CreditTransfer moves credits between accounts ("org:<id>", "device:<did>").
// The signer must speak for From: an admin of the organisation, or the device.
type CreditTransfer struct {
	From   string `cbor:"1,keyasint"`
	To     string `cbor:"2,keyasint"`
	Amount uint64 `cbor:"3,keyasint"`
	Memo   string `cbor:"4,keyasint,omitempty"`
}

func (*CreditTransfer) Kind() string { return KindCreditTransfer }

func (m *CreditTransfer) ValidateBasic() error {
	if err := CheckAccount(m.From); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if err := CheckAccount(m.To); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	if m.From == m.To {
		return errors.New("from and to are the same account")
	}
	if m.Amount == 0 || m.Amount > MaxCredits {
		return fmt.Errorf("amount %d is out of range 1..%d", m.Amount, uint64(MaxCredits))
	}
	return validateText("memo", m.Memo, 256)
}

// MaxCredits bounds any balance or amount (so sums never overflow).
const MaxCredits = math.MaxInt64 / 4

// CreditMint creates credits in an account. Credits exist only from genesis
// or by this governance tx: it is accepted when validators holding more than
// 2/3 of the power signed CreditMintMessage(chainID, Seq, To, Amount).
type CreditMint struct {
	To        string     `cbor:"1,keyasint"`
	Amount    uint64     `cbor:"2,keyasint"`
	Seq       uint64     `cbor:"3,keyasint"` // the ledger's next mint sequence
	Approvals []Approval `cbor:"4,keyasint"`
}

func (*CreditMint) Kind() string { return KindCreditMint }

func (m *CreditMint) ValidateBasic() error {
	if err := CheckAccount(m.To); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	if m.Amount == 0 || m.Amount > MaxCredits {
		return fmt.Errorf("amount %d is out of range 1..%d", m.Amount, uint64(MaxCredits))
	}
	return ValidateApprovals(m.Approvals, true)
}

// CreditMintMessage is what each approving validator signs.
func CreditMintMessage(chainID string, seq uint64, to string, amount uint64) []byte {
	return MustMarshal([]any{"thingnet/credit-mint/v1", chainID, seq, to, amount})
}

// checkAccount accepts "org:<id>" and "device:<did>".
func CheckAccount(s string) error {
	p, err := ParsePrincipal(s)
	if err != nil {
		return err
	}
	if p.Type != "org" && p.Type != "device" {
		return fmt.Errorf("%q: credits are held by org:<id> or device:<did>", s)
	}
	return nil
}

// Transfer is one movement of credits, kept forever: a mint, a transfer,
// or an agreement's escrow, release or payment.
type Transfer struct {
	Seq       uint64 `cbor:"1,keyasint" json:"seq"`
	Height    int64  `cbor:"2,keyasint" json:"height"`
	From      string `cbor:"3,keyasint,omitempty" json:"from,omitempty"` // empty for a mint
	To        string `cbor:"4,keyasint" json:"to"`
	Amount    uint64 `cbor:"5,keyasint" json:"amount"`
	Kind      string `cbor:"6,keyasint" json:"kind"` // mint, transfer, escrow, release
	Agreement uint64 `cbor:"7,keyasint,omitempty" json:"agreement,omitempty"`
	Tx        []byte `cbor:"8,keyasint,omitempty" json:"tx,omitempty"`
	Memo      string `cbor:"9,keyasint,omitempty" json:"memo,omitempty"`
}
