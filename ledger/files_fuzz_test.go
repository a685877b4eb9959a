package ledger

import (
	"testing"
)

// FuzzFileManifest: file manifests and file tx bodies decode without
// panics; what validates re-encodes and decodes to the same.
func FuzzFileManifest(f *testing.F) {
	did := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	keys := []WrappedKey{{Recipient: did, Suite: 1, Sealed: []byte{1, 2, 3}}}
	for _, v := range []any{
		&FileManifest{Org: "acme", Name: "clip", CID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Size: 9, Private: true, Keys: keys, Owner: did, Version: 1},
		&FilePublish{Org: "acme", Name: "clip", CID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Size: 9, Private: true, Keys: keys},
		&FileShare{Org: "acme", Name: "clip", Keys: keys},
		&FileRevoke{Org: "acme", Name: "clip", Recipient: did},
		&FirmwareApprove{Org: "acme", Vendor: "beta", Class: "camera", Seq: 3},
		&FirmwareRollout{Org: "acme", Vendor: "beta", Class: "camera", Seq: 3, Percent: 10, BlocksPerWave: 5, MaxFailures: 2},
		&FirmwareReport{Digest: make([]byte, 32), Version: "1.0", Failed: true},
	} {
		raw, err := Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m FileManifest
		if Unmarshal(b, &m) == nil {
			_ = m.KeyFor(did)
		}
		_, _, _ = DecodeFirmware(b)
		for _, msg := range []Msg{new(FilePublish), new(FileShare), new(FileRevoke), new(FileRekey), new(FilePinMsg),
			new(FirmwareRelease), new(FirmwareApprove), new(FirmwareReport), new(FirmwareRollout)} {
			if Unmarshal(b, msg) != nil || msg.ValidateBasic() != nil {
				continue
			}
			again, err := Marshal(msg)
			if err != nil {
				t.Fatalf("%T validated but does not re-encode: %v", msg, err)
			}
			fresh := msgTypes[msg.Kind()]()
			if err := Unmarshal(again, fresh); err != nil || fresh.ValidateBasic() != nil {
				t.Fatalf("%T re-encoded does not decode and validate: %v", msg, err)
			}
		}
	})
}
