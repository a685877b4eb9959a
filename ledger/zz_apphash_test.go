package ledger

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/cryptotest"
)

// TEMPORARY (never committed): dumps the app hash after every block of each
// scenario with deterministic crypto randomness.
var hashSink func([]byte)

func TestZZAppHashes(t *testing.T) {
	out := os.Getenv("APPHASH_OUT")
	if out == "" {
		t.Skip()
	}
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"TestAgreementsOnLedger", TestAgreementsOnLedger}, {"TestAgreementEventsAndSchedule", TestAgreementEventsAndSchedule},
		{"TestDataAnchor", TestDataAnchor}, {"TestEvidenceRemovesValidator", TestEvidenceRemovesValidator},
		{"TestExchangeAnchor", TestExchangeAnchor}, {"TestFirmwareReportReason", TestFirmwareReportReason},
		{"TestOrganisations", TestOrganisations}, {"TestDeviceLifecycle", TestDeviceLifecycle},
		{"TestTenancy", TestTenancy}, {"TestGrantExpiry", TestGrantExpiry}, {"TestEnvelopeRejections", TestEnvelopeRejections},
		{"TestValidatorUpdate", TestValidatorUpdate}, {"TestProofs", TestProofs}, {"TestGenesisDevices", TestGenesisDevices},
		{"TestDeterminism", TestDeterminism},
	}
	var b strings.Builder
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cryptotest.SetGlobalRandom(t, 7)
			var hs []string
			hashSink = func(h []byte) { hs = append(hs, hex.EncodeToString(h)[:16]) }
			defer func() { hashSink = nil }()
			tc.fn(t)
			fmt.Fprintf(&b, "%s %d %s\n", tc.name, len(hs), strings.Join(hs, ","))
		})
	}
	os.WriteFile(out, []byte(b.String()), 0o644)
}
