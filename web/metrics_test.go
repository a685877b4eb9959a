package web_test

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPromtoolCheckMetrics lints a real node's /metrics (every collector:
// ledger, consensus, events, gateway, MQTT, CoAP) with Prometheus's own
// promtool, and checks the consensus and tx-by-kind metrics are there.
func TestPromtoolCheckMetrics(t *testing.T) {
	need(t)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: install Debian's prometheus package (scripts/test does) to lint the metrics")
	}
	want := []string{
		"thingnet_consensus_height ", "thingnet_consensus_block_interval_seconds_bucket{le=",
		`thingnet_ledger_txs_committed_total{kind="device.register",result="ok"}`,
		`thingnet_ledger_txs_committed_total{kind="data.anchor",result="ok"}`,
		"thingnet_events_published_total ", "thingnet_ledger_checktx_rejected_total{",
		`thingnet_api_requests_total{route="POST /v1/readings",status="2xx"}`, "thingnet_api_proofs_served_total ",
	}
	// The block watcher counts a block just after it is committed: wait
	// for the counters of the setup's transactions.
	var body []byte
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(shared.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("GET /metrics: %v %v", res.Status, err)
		}
		missing := ""
		for _, w := range want {
			if !bytes.Contains(body, []byte(w)) {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
