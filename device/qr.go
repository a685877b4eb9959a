package device

import (
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// ClaimQR draws a claim code as a QR code for a terminal: two modules per
// character cell with Unicode half blocks, dark on light, with the quiet
// zone, so a phone camera reads it off the screen. The code's characters
// are all in QR's alphanumeric set, which keeps the symbol small.
func ClaimQR(code string) (string, error) {
	q, err := qrcode.New(code, qrcode.Medium)
	if err != nil {
		return "", err
	}
	bm := q.Bitmap() // true = dark, with a 4-module border
	var b strings.Builder
	for y := 0; y < len(bm); y += 2 {
		for x := range bm[y] {
			top := bm[y][x]
			bottom := y+1 < len(bm) && bm[y+1][x]
			switch {
			case top && bottom:
				b.WriteRune(' ')
			case top:
				b.WriteRune('▄')
			case bottom:
				b.WriteRune('▀')
			default:
				b.WriteRune('█')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
