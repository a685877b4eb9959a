package export

import (
	"testing"
	"time"
)

// TestBackoff: the wait doubles from base up to most, with jitter in its
// upper half, for any number of failures.
func TestBackoff(t *testing.T) {
	base, most := 100*time.Millisecond, 10*time.Second
	for n := 0; n < 100; n++ {
		full := most
		if n < 30 {
			full = min(base<<max(n-1, 0), most)
		}
		for range 20 {
			if d := Backoff(n, base, most); d < full/2 || d > full {
				t.Fatalf("Backoff(%d) = %v; want within [%v, %v]", n, d, full/2, full)
			}
		}
	}
}
