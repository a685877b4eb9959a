package ledger

import (
	"strings"
	"testing"

	"github.com/thingnet/thingnet/record"
)

// A failed report may say why; a reason without a failure, an overlong one
// or one with control characters is refused before it reaches a block.
func TestFirmwareReportReason(t *testing.T) {
	d := make([]byte, 32)
	for _, tc := range []struct {
		m  record.FirmwareReport
		ok bool
	}{
		{record.FirmwareReport{Digest: d, Version: "1.0"}, true},
		{record.FirmwareReport{Digest: d, Version: "1.0", Failed: true}, true},
		{record.FirmwareReport{Digest: d, Version: "1.0", Failed: true, Reason: "image digest mismatch from every gateway"}, true},
		{record.FirmwareReport{Digest: d, Version: "1.0", Reason: "installed fine"}, false},
		{record.FirmwareReport{Digest: d, Version: "1.0", Failed: true, Reason: strings.Repeat("x", record.MaxFirmwareReason+1)}, false},
		{record.FirmwareReport{Digest: d, Version: "1.0", Failed: true, Reason: "line\nbreak"}, false},
	} {
		if err := tc.m.ValidateBasic(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v; want ok=%v", tc.m, err, tc.ok)
		}
	}
	raw, err := record.Marshal(&record.FirmwareReport{Digest: d, Version: "1.0", Failed: true, Reason: "self-test failed"})
	if err != nil {
		t.Fatal(err)
	}
	var back record.FirmwareReport
	if err := record.Unmarshal(raw, &back); err != nil || back.Reason != "self-test failed" || !back.Failed {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}
