package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/devnet"
)

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_thingnet", "zsh": "#compdef thingnet", "fish": "complete -c thingnet"} {
		out, err := cli(t, "http://127.0.0.1:1", t.TempDir(), "completion", shell)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("thingnet completion %s: %v; output lacks %q", shell, err, want)
		}
	}
}

func TestLogFlags(t *testing.T) {
	for _, tc := range [][2]string{{"info", "json"}, {"debug", "text"}, {"WARN", "text"}} {
		if err := checkLogFlags(tc[0], tc[1]); err != nil {
			t.Errorf("checkLogFlags(%q, %q): %v", tc[0], tc[1], err)
		}
	}
	for _, tc := range [][2]string{{"loud", "text"}, {"info", "xml"}} {
		if err := checkLogFlags(tc[0], tc[1]); err == nil {
			t.Errorf("checkLogFlags(%q, %q) accepted", tc[0], tc[1])
		}
	}
	out, err := cli(t, "http://127.0.0.1:1", t.TempDir(), "devnet", "--home", t.TempDir(), "--log-format", "xml")
	if err == nil || !strings.Contains(out+err.Error(), "use text or json") {
		t.Errorf("devnet --log-format xml: %v %s", err, out)
	}
}

// TestStatusAndEvents runs `thingnet status` and `thingnet events` against
// a one-validator devnet, in text and JSON.
func TestStatusAndEvents(t *testing.T) {
	home := t.TempDir()
	base, err := chain.FreePortBase(1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := devnet.Start(devnet.Config{Home: home, Validators: 1, BasePort: base, FastBlocks: true, NoSync: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	node, ks := d.APIURL(0), devnet.Keystore(home).Dir

	var st struct {
		ChainID    string `json:"chain_id"`
		Validators int    `json:"validators"`
		Explorer   string `json:"explorer"`
	}
	out := mustCLI(t, node, ks, "status", "-o", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.ChainID != d.ChainID() || st.Validators != 1 || !strings.HasSuffix(st.Explorer, "/explorer/") {
		t.Fatalf("status -o json = %s (%v)", out, err)
	}
	if out := mustCLI(t, node, ks, "status"); !strings.Contains(out, "explorer:") {
		t.Errorf("status = %q", out)
	}

	out = mustCLI(t, node, ks, "events", "--types", "block", "--count", "2", "-o", "json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("events --count 2 printed %q", out)
	}
	for _, l := range lines {
		var ev struct {
			ID   uint64
			Type string
			Data struct{ Height int64 }
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Type != "block" || ev.ID == 0 || ev.Data.Height == 0 {
			t.Errorf("event line %q: %+v %v", l, ev, err)
		}
	}
	if out := mustCLI(t, node, ks, "events", "--types", "block", "--count", "1"); !strings.Contains(out, "block") {
		t.Errorf("events (text) = %q", out)
	}
}

// FuzzPrintEvents feeds arbitrary streams to the SSE reader of `thingnet
// events`: it must not fail on any input, and prints one line per event.
func FuzzPrintEvents(f *testing.F) {
	f.Add("id: 1\nevent: block\ndata: {\"height\":1}\n\n", true)
	f.Add(": comment\n\nretry: 2000\nid: 2\nevent: tx\ndata: {}\ndata: {}\n\n", false)
	f.Add("data: x\n\n\n\nevent: lost\n", true)
	f.Fuzz(func(t *testing.T, stream string, asJSON bool) {
		var out strings.Builder
		if err := printEvents(&out, strings.NewReader(stream), asJSON, 0); err != nil {
			return // a line longer than the scanner's buffer
		}
		if n := strings.Count(out.String(), "\n"); n > strings.Count(stream, "\n") {
			t.Fatalf("%d lines printed from %d input lines", n, strings.Count(stream, "\n"))
		}
	})
}
