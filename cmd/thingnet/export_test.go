package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/thingnet/thingnet/export"
	"github.com/thingnet/thingnet/export/exporters"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
)

// TestExportDeadLetters: deliveries to an endpoint that is down are
// dead-lettered; `thingnet export dead-letters` lists them, drops one and
// delivers the others once the endpoint is back.
func TestExportDeadLetters(t *testing.T) {
	var up atomic.Bool
	var delivered atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		delivered.Add(1)
	}))
	defer srv.Close()
	dir := t.TempDir()
	t.Setenv("THINGNET_EXPORT_PASSPHRASE", "")
	info, err := identity.Keystore{Dir: dir}.Save("exporter", testutil.Key(t, identity.Ed25519), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "export.toml")
	toml := fmt.Sprintf("[[export]]\nname = \"hook\"\nkind = \"webhook\"\nurl = %q\nidentity = %q\nmax_attempts = 1\nsource = \"http://127.0.0.1:1\"\n", srv.URL, filepath.Base(info.Path))
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	specs, env, err := loadExports(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := exporters.Webhook(specs[0], env)
	if err != nil {
		t.Fatal(err)
	}
	v := 1.5
	b := &export.Batch{Gateway: "gw", Next: 3}
	for i := range 3 {
		r := export.Row{Gateway: "gw", Index: uint64(i), Org: "acme", Proof: "p"}
		r.Reading.Seq, r.Reading.Value = uint64(i+1), &v
		b.Rows = append(b.Rows, r)
	}
	if err := sink.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}

	ks := t.TempDir()
	out := mustCLI(t, "http://127.0.0.1:1", ks, "export", "dead-letters", "--config", cfg, "--name", "hook")
	for _, id := range []string{"gw/0/1", "gw/1/2", "gw/2/3"} {
		if !strings.Contains(out, id) || !strings.Contains(out, "502") {
			t.Errorf("dead-letters lists:\n%s\nwant %s with its error", out, id)
		}
	}
	mustCLI(t, "http://127.0.0.1:1", ks, "export", "dead-letters", "--config", cfg, "--name", "hook", "--drop", "gw/1/2")
	if _, err := cli(t, "http://127.0.0.1:1", ks, "export", "dead-letters", "--config", cfg, "--name", "hook", "--retry", "gw/0/1"); err == nil {
		t.Error("a retry to an endpoint still down succeeds")
	}
	up.Store(true)
	out = mustCLI(t, "http://127.0.0.1:1", ks, "export", "dead-letters", "--config", cfg, "--name", "hook", "--retry-all")
	if !strings.Contains(out, "delivered gw/0/1") || !strings.Contains(out, "delivered gw/2/3") || delivered.Load() != 2 {
		t.Errorf("retry-all: %s (%d delivered); want the two left delivered", out, delivered.Load())
	}
	if out := mustCLI(t, "http://127.0.0.1:1", ks, "export", "dead-letters", "--config", cfg, "--name", "hook"); !strings.Contains(out, "no dead letters") {
		t.Errorf("after retry-all: %s", out)
	}
	if _, err := cli(t, "http://127.0.0.1:1", ks, "export", "backfill", "--config", cfg, "--name", "hook", "--from", "0"); err == nil || !strings.Contains(err.Error(), "postgres") {
		t.Errorf("backfill of a webhook export = %v; want refused", err)
	}
}
