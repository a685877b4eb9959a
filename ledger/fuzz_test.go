package ledger

import (
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// FuzzDecodeTx: the decoder never panics, and whatever it accepts re-encodes.
func FuzzDecodeTx(f *testing.F) {
	k, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		f.Fatal(err)
	}
	dev, _ := identity.GenerateKey(identity.P256)
	proof, _ := dev.Sign(record.PossessionMessage("c", "acme", dev.ID()))
	for _, m := range []record.Msg{
		&record.OrgCreate{ID: "acme", Name: "Acme"},
		&record.OrgCreate{ID: "acme", Approvals: []record.Approval{{Validator: make([]byte, 32), Signature: make([]byte, 64)}}, DepositFrom: "org:sponsor"},
		&record.OrgAdminRotate{Org: "acme", New: dev.ID(), Proof: proof},
		&record.UpgradePlan{Name: "v2", Height: 100, AppVersion: 2, Info: "i", Seq: 1, Approvals: []record.Approval{{Validator: make([]byte, 32), Signature: make([]byte, 64)}}},
		&record.DeviceRegister{Org: "acme", Device: dev.ID(), Class: "sensor", Labels: map[string]string{"a": "b"}, Proof: proof},
		&record.GrantAdd{Grantor: "org:acme", Subject: "device:" + dev.ID(), Action: "read", Resource: "org:acme/x", Expiry: 9},
		&record.DataAnchor{Size: 9, Root: make([]byte, 32), Consistency: [][]byte{make([]byte, 32)}},
		&record.ConfigSet{Org: "acme", Scope: record.ConfigClass, Name: "sensor", Version: 2, Settings: map[string]any{"wake_s": 30, "mode": "eco"}},
		&record.ValidatorUpdate{PubKey: make([]byte, 32), Power: 1, Seq: 1, Approvals: []record.Approval{{Validator: make([]byte, 32), Signature: make([]byte, 64)}}},
	} {
		raw, err := record.NewTx(k, "", "c", 1, 10, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
	}
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})
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
