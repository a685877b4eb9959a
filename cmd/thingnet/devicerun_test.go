package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/internal/testutil"
)

// TestDevnetFleetCommand runs `thingnet devnet` with a small fleet: it says
// what it starts, the first reading over each transport is stored, the
// fleet's agreement commands the fan, the camera's clip reaches the display
// (fetched and verified) and its answer the camera, one line per kind of
// event, and Ctrl-C stops the fleet and the network.
func TestDevnetFleetCommand(t *testing.T) {
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	root := newRoot()
	var out testutil.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"devnet", "--home", t.TempDir(), "--base-port", fmt.Sprint(base), "--fast", "--fleet", "4", "--fleet-wake", "500ms", "--clip-every", "3s"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	deadline := time.After(150 * time.Second)
	ready := func(s string) bool {
		return strings.Count(s, "'s first over") == 3 && strings.Contains(s, "executing command") &&
			strings.Contains(s, " fetch   display-0000 fetched") && strings.Contains(s, " direct  display-0000 answered cam-0000")
	}
	for !ready(out.String()) {
		select {
		case err := <-done:
			t.Fatalf("devnet exited: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("the fleet's readings, command or exchange did not all arrive:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("devnet: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"starting a simulated fleet of 4 devices", "fleet: 4 devices (4 newly registered)", "temperature sensors over http", "motion sensors over mqtt", "meter sensors over coap", "(fleet-fan)", "sim-0001: executing command", " clip    cam-0000 recorded", " mailbox cam-0000 left", "stopped; run again to resume"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, " fetch   display-0000"); n != 1 {
		t.Errorf("%d fetch lines; want the first only (then counts in the status line):\n%s", n, got)
	}
}
