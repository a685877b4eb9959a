package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestVendorBundle checks that the committed bundle is the build of the
// versions web/vendor/package.json pins (build.sh writes them in its
// header) and that their licence ships with it. (build.sh --check
// rebuilds it byte for byte where npm is at hand.)
func TestVendorBundle(t *testing.T) {
	var pkg struct{ Dependencies map[string]string }
	b, err := os.ReadFile("vendor/package.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	bundle, err := os.ReadFile("assets/vendor/noble.js")
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(bundle), "*/")
	for name, v := range pkg.Dependencies {
		if !strings.Contains(head, fmt.Sprintf(" * %s %s\n", name, v)) {
			t.Errorf("assets/vendor/noble.js is not built from %s %s (package.json): run web/vendor/build.sh\n%s", name, v, head)
		}
	}
	if len(pkg.Dependencies) == 0 {
		t.Error("vendor/package.json names no dependency")
	}
	lic, err := os.ReadFile("assets/vendor/LICENSE-noble")
	if err != nil || !strings.Contains(string(lic), "The MIT License") {
		t.Errorf("assets/vendor/LICENSE-noble: %v", err)
	}
}

// TestExplorerCSP: the explorer's pages and scripts, the vendored bundle
// included, are served with a Content-Security-Policy of 'self' only (no
// inline script, no eval, nothing from or to another origin): what keeps
// script injected into a page from the key a reader signed in with.
func TestExplorerCSP(t *testing.T) {
	need(t)
	const want = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"
	for _, path := range []string{"", "index.html", "app.js", "keys.js", "vendor/noble.js"} {
		res, err := http.Get(shared.url + "/explorer/" + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("/explorer/%s: %s", path, res.Status)
		}
		if got := res.Header.Get("Content-Security-Policy"); got != want {
			t.Errorf("/explorer/%s: Content-Security-Policy %q, want %q", path, got, want)
		}
		if strings.HasSuffix(path, ".js") && !strings.Contains(res.Header.Get("Content-Type"), "javascript") {
			t.Errorf("/explorer/%s: Content-Type %q", path, res.Header.Get("Content-Type"))
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("/explorer/%s: no X-Content-Type-Options: nosniff", path)
		}
	}
}
