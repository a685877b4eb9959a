package textdur

import (
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.Duration != 90*time.Second {
		t.Fatalf("1m30s = %v, %v", d, err)
	}
	if b, _ := d.MarshalText(); string(b) != "1m30s" {
		t.Fatalf("MarshalText = %s", b)
	}
	if err := d.UnmarshalText([]byte("10 parsecs")); err == nil || !strings.Contains(err.Error(), "no duration") || d.Duration != 90*time.Second {
		t.Fatalf("a bad duration = %v, left %v; want an error and nothing changed", err, d)
	}
}
