package device

import (
	"strings"
	"testing"

	qrcode "github.com/skip2/go-qrcode"
)

// TestClaimQR: the drawing has one row per two modules of the symbol, and
// the symbol holds the code.
func TestClaimQR(t *testing.T) {
	code := "TNC1-ABCD-EFGH-1234-5678"
	s, err := ClaimQR(code)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := qrcode.New(code, qrcode.Medium)
	n := len(q.Bitmap())
	rows := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(rows) != (n+1)/2 || len([]rune(rows[0])) != n {
		t.Fatalf("%d rows of %d cells for a %d-module symbol", len(rows), len([]rune(rows[0])), n)
	}
	if q.Content != code {
		t.Fatalf("symbol holds %q", q.Content)
	}
}
