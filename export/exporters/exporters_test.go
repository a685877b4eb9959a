package exporters_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/export"
	"github.com/thingnet/thingnet/export/exporters"
	"github.com/thingnet/thingnet/export/internal/exporttest"
	"github.com/thingnet/thingnet/export/webhook"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/node"
	"github.com/thingnet/thingnet/record"
)

// TestNodeExports runs a webhook [[export]] inside a node: deliveries are
// signed by the gateway key, whose public key the ledger holds, and the
// export shows in GET /v1/exports and /metrics.
func TestNodeExports(t *testing.T) {
	var mu sync.Mutex
	got := map[string]bool{}
	var tn *exporttest.Net
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// The key the ledger holds for the signer (the gateway device).
		pub := func(id string) (identity.PublicKey, error) {
			var d struct{ Record record.Device }
			if err := client.New(tn.API).Get(r.Context(), "/v1/devices/"+id, &d); err != nil {
				return identity.PublicKey{}, err
			}
			return identity.ParseDID(d.Record.Key) // its current key
		}
		id, err := webhook.Verify(r.Header, body, pub, time.Now(), time.Minute)
		if err != nil || id != tn.Gateway.ID() {
			t.Errorf("delivery signed by %q: %v; want the gateway's key", id, err)
		}
		mu.Lock()
		got[r.Header.Get(webhook.HeaderDelivery)] = true
		mu.Unlock()
	}))
	defer srv.Close()
	tn = exporttest.StartWith(t, 1, func(_ *exporttest.Net, c *node.Config) {
		c.Export = []exporters.Spec{{Name: "hook", Kind: exporters.KindWebhook, URL: srv.URL, After: export.AfterAnchored}}
	})
	ctx := testutil.Context(t, time.Minute)
	// The gateway key is acme's device; a read grant on the organisation
	// lets it read acme's readings.
	if err := tn.Grant(ctx, "device:"+tn.Gateway.ID(), "org:acme"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := tn.Post(ctx, tn.Sensors[0], float64(i)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, ctx, "five deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 5 })
	var st struct{ Exports []export.Status }
	testutil.WaitFor(t, ctx, "the status to show them", func() bool {
		return client.New(tn.API).Get(ctx, "/v1/exports", &st) == nil && len(st.Exports) == 1 && st.Exports[0].Delivered == 5
	})
	if s := st.Exports[0]; s.Name != "hook" || s.Kind != "webhook" || s.After != "anchored" || s.Gateway != tn.Gateway.ID() {
		t.Errorf("status = %+v", s)
	}
	var metrics []byte
	if err := client.New(tn.API).Get(ctx, "/metrics", &metrics); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(metrics), `thingnet_export_delivered_total{export="hook",kind="webhook"} 5`) {
		t.Errorf("/metrics lacks the export's delivered count:\n%s", grep(string(metrics), "thingnet_export"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestLoadFile: a file of [[export]] tables loads; a bad one is refused
// with the field named.
func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ toml, want string }{
		{`[[export]]
name = "warehouse"
kind = "postgres"
dsn = "postgres://export@db:5432/iot"
after = "anchored"
poll = "1s"

[[export]]
name = "alerts"
kind = "webhook"
url = "https://example.com/hook"
timeout = "2s"
rate = 5.0
`, ""},
		{"[[export]]\nname = \"x\"\nkind = \"kafka\"\n", "kind"},
		{"[[export]]\nname = \"x\"\nkind = \"postgres\"\n", "dsn"},
		{"[[export]]\nname = \"x\"\nkind = \"nats\"\nurl = \"nats://h\"\nafter = \"later\"\n", "after"},
		{"[[export]]\nname = \"a b\"\nkind = \"nats\"\nurl = \"nats://h\"\n", "name"},
		{"[[export]]\nname = \"x\"\nkind = \"nats\"\nurl = \"nats://h\"\n[[export]]\nname = \"x\"\nkind = \"nats\"\nurl = \"nats://h\"\n", "twice"},
		{"moniker = \"n\"\n", "no [[export]]"},
	} {
		p := filepath.Join(dir, "export.toml")
		if err := os.WriteFile(p, []byte(c.toml), 0o600); err != nil {
			t.Fatal(err)
		}
		specs, err := exporters.LoadFile(p)
		if c.want == "" {
			if err != nil || len(specs) != 2 || specs[0].Poll != time.Second || specs[1].Timeout != 2*time.Second || specs[1].Rate != 5 {
				t.Errorf("LoadFile = %+v, %v", specs, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadFile(%q) = %v; want an error naming %s", c.toml, err, c.want)
		}
	}
}
