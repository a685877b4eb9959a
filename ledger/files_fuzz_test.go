package ledger

import (
	"testing"

	"github.com/thingnet/thingnet/record"
)

// FuzzFileManifest: file manifests and file tx bodies decode without
// panics; what validates re-encodes and decodes to the same.
func FuzzFileManifest(f *testing.F) {
	did := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	keys := []record.WrappedKey{{Recipient: did, Suite: 1, Sealed: []byte{1, 2, 3}}}
	for _, v := range []any{
		&record.FileManifest{Org: "acme", Name: "clip", CID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Size: 9, Private: true, Keys: keys, Owner: did, Version: 1},
		&record.FilePublish{Org: "acme", Name: "clip", CID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Size: 9, Private: true, Keys: keys},
		&record.FileShare{Org: "acme", Name: "clip", Keys: keys},
		&record.FileRevoke{Org: "acme", Name: "clip", Recipient: did},
		&record.FirmwareApprove{Org: "acme", Vendor: "beta", Class: "camera", Seq: 3},
		&record.FirmwareRollout{Org: "acme", Vendor: "beta", Class: "camera", Seq: 3, Percent: 10, BlocksPerWave: 5, MaxFailures: 2},
		&record.FirmwareReport{Digest: make([]byte, 32), Version: "1.0", Failed: true},
	} {
		raw, err := record.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m record.FileManifest
		if record.Unmarshal(b, &m) == nil {
			_ = m.KeyFor(did)
		}
		_, _, _ = record.DecodeFirmware(b)
		for _, msg := range []record.Msg{new(record.FilePublish), new(record.FileShare), new(record.FileRevoke), new(record.FileRekey), new(record.FilePinMsg),
			new(record.FirmwareRelease), new(record.FirmwareApprove), new(record.FirmwareReport), new(record.FirmwareRollout)} {
			if record.Unmarshal(b, msg) != nil || msg.ValidateBasic() != nil {
				continue
			}
			again, err := record.Marshal(msg)
			if err != nil {
				t.Fatalf("%T validated but does not re-encode: %v", msg, err)
			}
			fresh, _ := record.NewMsg(msg.Kind())
			if err := record.Unmarshal(again, fresh); err != nil || fresh.ValidateBasic() != nil {
				t.Fatalf("%T re-encoded does not decode and validate: %v", msg, err)
			}
		}
	})
}
