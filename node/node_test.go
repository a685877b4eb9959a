package node

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/record"
)

func TestConfigFile(t *testing.T) {
	home := t.TempDir()
	c := DefaultConfig()
	c.Moniker = "gw-7"
	c.P2P.PersistentPeers = []string{"0123456789abcdef0123456789abcdef01234567@10.0.0.2:26656"}
	if err := WriteConfig(home, c); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	if got.Moniker != "gw-7" || len(got.P2P.PersistentPeers) != 1 || got.Consensus.TimeoutCommit != c.Consensus.TimeoutCommit ||
		got.Gateway.AnchorInterval.Duration != gateway.DefaultAnchorInterval || got.Gateway.AnchorBudget != gateway.DefaultAnchorBudget {
		t.Errorf("LoadConfig = %+v; want what was written", got)
	}

	for _, tc := range []struct{ toml, want string }{
		{"log_level = \"loud\"\n", "log_level"},
		{"[api]\nlisten = \"nonsense\"\n", "api.listen"},
		{"[ledger]\nkeep_versions = 1\n", "keep_versions"},
		{"[p2p]\nlisten = \"tcp://:x\"\n", "P2P"},
		{"colour = \"blue\"\n", "unknown setting"},
		{"[consensus]\ntimeout_commit = \"soon\"\n", "timeout_commit"},
		{"[gateway]\nanchor_interval = \"-1s\"\n", "gateway.anchor_interval"},
		{"[gateway]\nenabled = true\n[gateway.limits]\nmsgs_per_sec = -1\n", "gateway.limits"},
		{"[gateway]\nenabled = true\n[gateway.source_limits]\nmsgs_per_sec = -1\n", "gateway.source_limits"},
		{"[mqtt]\nlisten = \"127.0.0.1:1883\"\n", "gateway.enabled"},
		{"[mesh]\nfiles_reprovide_interval = \"-1h\"\n", "files_reprovide_interval"},
		{"[gateway]\nenabled = true\n[gateway.archive]\nenabled = true\n[mesh]\nlisten = []\n", "mesh.listen"},
		{"[gateway.archive]\nsegment_entries = 100000\n", "gateway.archive"},
	} {
		os.WriteFile(filepath.Join(home, ConfigFile), []byte(tc.toml), 0o600)
		if _, err := LoadConfig(home); err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
			t.Errorf("LoadConfig(%q) error = %v; want one naming %q", tc.toml, err, tc.want)
		}
	}
	// [gateway.source_limits] raises the per-address limits only; the
	// fields left out are the per-device ones.
	os.WriteFile(filepath.Join(home, ConfigFile), []byte("[gateway]\nenabled = true\n[gateway.source_limits]\nmsgs_per_sec = 1000\nburst = 2000\n"), 0o600)
	lc, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	src, dev := lc.Gateway.sourceLimits(), lc.Gateway.Limits.limits()
	if src.MsgsPerSec != 1000 || src.Burst != 2000 || src.BytesPerSec != dev.BytesPerSec || src.MaxPacket != dev.MaxPacket || dev.MsgsPerSec != 10 {
		t.Errorf("source limits %+v, device limits %+v; want 1000/s burst 2000 per address, the rest as per device (10/s)", src, dev)
	}
	if def := DefaultConfig().Gateway; def.sourceLimits() != def.Limits.limits() {
		t.Errorf("default source limits %+v; want the device limits %+v", def.sourceLimits(), def.Limits.limits())
	}
	// [gateway.archive] reads into the gateway's archiving config.
	os.WriteFile(filepath.Join(home, ConfigFile), []byte("[gateway]\nenabled = true\n[mesh]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n[gateway.archive]\nenabled = true\nage = \"720h\"\nsegment_entries = 1000\nmin_pins = 3\npin = false\n"), 0o600)
	if lc, err = LoadConfig(home); err != nil {
		t.Fatal(err)
	}
	if a := lc.Gateway.Archive.gateway(true); !a.Archive || a.Pin || a.Age != 720*time.Hour || a.SegmentEntries != 1000 || a.MinPins != 3 {
		t.Errorf("[gateway.archive] = %+v; want archiving after 720h in segments of 1000, 3 pins, not pinning others", a)
	}
	if a := DefaultConfig().Gateway.Archive.gateway(true); a.Archive || !a.Pin {
		t.Errorf("default archiving %+v; want off, pinning others' segments on", a)
	}
	if _, err := LoadConfig(t.TempDir()); err == nil || !strings.Contains(err.Error(), "node init") {
		t.Errorf("LoadConfig(empty home) = %v; want a hint to run node init", err)
	}
}

// TestSingleNode initialises a node home as an operator would, writes a
// genesis naming it the only validator, starts it, and uses its API.
func TestSingleNode(t *testing.T) {
	home := t.TempDir()
	s := initSingleNode(t, home, "single", testConfig(t))
	loaded, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	n := startSingleNode(t, home, loaded)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := client.New(n.APIAddr())
	admin := s.admin
	if _, err := cl.Send(ctx, admin, "", &record.OrgCreate{ID: "second", Name: "Second"}, true); err != nil {
		t.Fatalf("org create: %v", err)
	}
	resp, err := http.Get("http://" + n.APIAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"thingnet_ledger_height ", `thingnet_ledger_checktx_rejected_total{reason="bad_nonce"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The explorer, and the event stream: the org just created is in it,
	// and a stream left open does not hold Close up.
	if res, err := http.Get("http://" + n.APIAddr() + "/"); err != nil || res.StatusCode != 200 || res.Request.URL.Path != "/explorer/" {
		t.Errorf("GET / = %v, %v; want the explorer", res, err)
	} else {
		res.Body.Close()
	}
	stream, err := http.Get("http://" + n.APIAddr() + "/v1/events?types=org&after=1")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	sc := bufio.NewScanner(stream.Body)
	for sc.Scan() && sc.Text() != "event: org" {
	}
	if sc.Scan(); !strings.Contains(sc.Text(), `"kind":"org.create"`) {
		t.Errorf("event stream: %q, %v; want the org.create", sc.Text(), sc.Err())
	}
	closing := time.Now()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(closing); d > 4*time.Second {
		t.Errorf("Close took %v with an event stream open", d)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	n = startSingleNode(t, home, loaded) // again
	view, err := n.App().View(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := view.Org("second"); err != nil {
		t.Errorf("after restart: %v", err)
	}
}

// TestNodeRecordsPins: a node with a gateway and a mesh records on the
// ledger the files it pins (file.pin through its gateway's tx queue, signed
// with the gateway key), and the removal when it unpins.
func TestNodeRecordsPins(t *testing.T) {
	home := t.TempDir()
	c := testConfig(t)
	c.Gateway.Enabled = true
	c.Mesh.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	gw := initSingleNode(t, home, "pins", c).gw
	n := startSingleNode(t, home, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tok, err := files.DeviceToken(gw, gw.ID(), "pins")
	if err != nil {
		t.Fatal(err)
	}
	fc := &files.Client{Base: "http://" + n.APIAddr(), Device: gw.ID(), Token: tok}
	added, err := fc.Add(ctx, strings.NewReader(strings.Repeat("pinned by its node ", 50_000)), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := client.New(n.APIAddr())
	pinners := func() []string {
		var p struct{ Items []record.FilePin }
		if err := cl.Get(ctx, "/v1/pins/"+added.CID, &p); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range p.Items {
			out = append(out, f.Pinner)
		}
		return out
	}
	waitFor := func(what string, want int) {
		t.Helper()
		for {
			got := pinners()
			if len(got) == want && (want == 0 || got[0] == gw.ID()) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: pinners %v", what, got)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	waitFor("after add, the node's gateway", 1)
	if err := fc.Unpin(ctx, added.CID); err != nil {
		t.Fatal(err)
	}
	waitFor("after unpin, nobody", 0)
}
