package chain

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	cmtbytes "github.com/cometbft/cometbft/libs/bytes"
)

func TestCometLoggerLevels(t *testing.T) {
	cases := []struct {
		level              string
		debug, info, error string // slog level each CometBFT level arrives at, "" = dropped
	}{
		{"", "", "DEBUG", "ERROR"},
		{"error", "", "", "ERROR"},
		{"info", "", "INFO", "ERROR"},
		{"debug", "DEBUG", "INFO", "ERROR"},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		l := newCometLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), tc.level)
		got := map[string]string{}
		for _, emit := range []struct {
			name string
			f    func(string, ...any)
		}{{"debug", l.Debug}, {"info", l.Info}, {"error", l.Error}} {
			buf.Reset()
			emit.f("m")
			if buf.Len() > 0 {
				var rec map[string]any
				if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
					t.Fatal(err)
				}
				got[emit.name] = rec["level"].(string)
			}
		}
		want := map[string]string{}
		for k, v := range map[string]string{"debug": tc.debug, "info": tc.info, "error": tc.error} {
			if v != "" {
				want[k] = v
			}
		}
		if len(got) != len(want) || got["debug"] != want["debug"] || got["info"] != want["info"] || got["error"] != want["error"] {
			t.Errorf("LogLevel %q: got %v, want %v", tc.level, got, want)
		}
	}
}

func TestCometLoggerAttributes(t *testing.T) {
	var buf bytes.Buffer
	l := newCometLogger(slog.New(slog.NewJSONHandler(&buf, nil)).With("module", "comet"), "info")
	l.With("module", "consensus").Info("committed", "hash", cmtbytes.HexBytes{0xab, 0xcd}, "height", 7)
	out := buf.String()
	for _, want := range []string{`"module":"comet"`, `"component":"consensus"`, `"hash":"ABCD"`, `"height":7`, `"msg":"committed"`} {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %s", out, want)
		}
	}
	if strings.Count(out, `"module"`) != 1 {
		t.Errorf("a key twice: %s", out)
	}
}

// TestCometLoggerStaleBlocksync: once block sync has handed over to
// consensus, its leftover request timers' "SendTimeout" errors are not
// errors (CometBFT v0.38 logs them 15 s into every healthy start); before
// the handover, and from other modules, errors stay errors.
func TestCometLoggerStaleBlocksync(t *testing.T) {
	var buf bytes.Buffer
	l := newCometLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "")
	bs, p2p := l.With("module", "blocksync"), l.With("module", "p2p")
	level := func(emit func(string, ...any), msg string) string {
		t.Helper()
		buf.Reset()
		emit(msg, "reason", "peer did not send us anything")
		var rec map[string]any
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("%q: %v", buf.String(), err)
		}
		return rec["level"].(string)
	}
	if got := level(bs.Error, "SendTimeout"); got != "ERROR" {
		t.Errorf("block sync SendTimeout before the handover at %s; want ERROR", got)
	}
	bs.With("peer", "ab").Info(blocksyncDone, "height", 1)
	if got := level(bs.With("peer", "ab").Error, "SendTimeout"); got != "DEBUG" {
		t.Errorf("block sync SendTimeout after the handover at %s; want DEBUG", got)
	}
	if got := level(p2p.Error, "Stopping peer for error"); got != "ERROR" {
		t.Errorf("p2p error after block sync's handover at %s; want ERROR", got)
	}
}
