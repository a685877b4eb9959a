package ledger

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// FuzzDecodeAgreementTx: agreement and credit txs decode without panics
// (the document is parsed in ValidateBasic), and what is accepted re-encodes.
func FuzzDecodeAgreementTx(f *testing.F) {
	k, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		f.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join("..", "examples", "agreements", "charging.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range []record.Msg{
		&record.AgreementDeploy{Source: src, Parties: map[string]string{"ev": "device:" + k.ID(), "operator": "org:acme"}},
		&record.AgreementAccept{ID: 1},
		&record.AgreementCall{ID: 1, Transition: "reserve", Args: map[string]any{"slot": int64(-3), "price": uint64(40), "ok": true, "s": "x"}},
		&record.AgreementCall{ID: 1, Transition: "hot", Reading: &record.ReadingEvidence{Gateway: k.ID(), Index: 1, Size: 2, Envelope: []byte{0xd2}, Inclusion: [][]byte{make([]byte, 32)}}},
		&record.CreditTransfer{From: "org:acme", To: "device:" + k.ID(), Amount: 5, Memo: "m"},
		&record.CreditMint{To: "org:acme", Amount: 5, Seq: 1, Approvals: []record.Approval{{Validator: make([]byte, 32), Signature: make([]byte, 64)}}},
	} {
		raw, err := record.NewTx(k, "", "c", 1, 10, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)*2/3])
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		tx, err := record.DecodeTx(raw)
		if err != nil {
			if record.CodeOf(err) == record.CodeOK {
				t.Fatalf("error %v has code ok", err)
			}
			return
		}
		if _, err := record.Marshal(tx.Msg); err != nil {
			t.Fatalf("accepted message does not re-encode: %v", err)
		}
	})
}
