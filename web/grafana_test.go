package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGrafanaDashboard keeps docs/grafana-dashboard.json honest: every
// query is valid PromQL (promtool check rules) and every metric it uses is
// exposed by a real node.
func TestGrafanaDashboard(t *testing.T) {
	need(t)
	b, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, strings.ReplaceAll(tg.Expr, "$instance", ".*"))
		}
	}
	if len(exprs) < 15 {
		t.Fatalf("only %d queries", len(exprs))
	}
	res, err := http.Get(shared.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	name := regexp.MustCompile(`\b((?:thingnet|go|process)_[a-z_]+)`)
	for _, e := range exprs {
		for _, m := range name.FindAllString(e, -1) {
			base := strings.TrimSuffix(m, "_bucket")
			if !strings.Contains(string(metrics), "\n"+base) && !strings.Contains(string(metrics), "# TYPE "+base+" ") {
				t.Errorf("the dashboard queries %s, which a node does not expose", m)
			}
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: install Debian's prometheus package (scripts/test does) to check the queries")
	}
	var rules strings.Builder
	rules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(e) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "  - record: dashboard:q%d\n    expr: %s\n", i, q)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
