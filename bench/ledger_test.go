package bench

import (
	"context"
	"testing"
	"time"
)

// TestFloodLedger floods a small 4-validator ledger network with
// device-signed txs: every one must commit and succeed.
func TestFloodLedger(t *testing.T) {
	w, err := NewLedgerWorkload("bench-test", 800)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := RunLedger(ctx, t.TempDir(), w, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Committed != len(w.Flood) || res.Failed != 0 || res.Rejected != 0 {
		t.Fatalf("flood: %s; want all %d committed and succeeded", res, len(w.Flood))
	}
	t.Logf("ledger flood: %s", res)
}
