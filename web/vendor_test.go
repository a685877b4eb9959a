package web_test

import (
	"encoding/json"
	"fmt"
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
