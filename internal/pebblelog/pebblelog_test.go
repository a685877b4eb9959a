package pebblelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

var _ pebble.Logger = Logger{}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "store")
	l.Infof("flushed %d", 1)
	l.Errorf("compaction failed: %s", "disk")
	out := buf.String()
	for _, want := range []string{"level=DEBUG msg=\"flushed 1\" source=pebble", "level=ERROR msg=\"compaction failed: disk\" source=pebble"} {
		if !strings.Contains(out, want) {
			t.Errorf("log = %q; want it to contain %q", out, want)
		}
	}
	defer func() {
		if got := recover(); got != "store: pebble: corrupt block 7" {
			t.Errorf("Fatalf panicked with %v; want %q", got, "store: pebble: corrupt block 7")
		}
	}()
	New(nil, "store").Fatalf("corrupt block %d", 7)
}
