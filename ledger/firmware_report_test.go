package ledger

import (
	"strings"
	"testing"
)

// A failed report may say why; a reason without a failure, an overlong one
// or one with control characters is refused before it reaches a block.
func TestFirmwareReportReason(t *testing.T) {
	d := make([]byte, 32)
	for _, tc := range []struct {
		m  FirmwareReport
		ok bool
	}{
		{FirmwareReport{Digest: d, Version: "1.0"}, true},
		{FirmwareReport{Digest: d, Version: "1.0", Failed: true}, true},
		{FirmwareReport{Digest: d, Version: "1.0", Failed: true, Reason: "image digest mismatch from every gateway"}, true},
		{FirmwareReport{Digest: d, Version: "1.0", Reason: "installed fine"}, false},
		{FirmwareReport{Digest: d, Version: "1.0", Failed: true, Reason: strings.Repeat("x", MaxFirmwareReason+1)}, false},
		{FirmwareReport{Digest: d, Version: "1.0", Failed: true, Reason: "line\nbreak"}, false},
	} {
		if err := tc.m.ValidateBasic(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v; want ok=%v", tc.m, err, tc.ok)
		}
	}
	raw, err := Marshal(&FirmwareReport{Digest: d, Version: "1.0", Failed: true, Reason: "self-test failed"})
	if err != nil {
		t.Fatal(err)
	}
	var back FirmwareReport
	if err := Unmarshal(raw, &back); err != nil || back.Reason != "self-test failed" || !back.Failed {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}
