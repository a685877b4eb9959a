// Package testutil holds the helpers that the tests of several packages
// share: waiting for a condition, a test's context, a fresh key, the
// thingnet binary built once, and a goroutine leak check. It is for tests
// only; no package outside _test.go files imports it.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
)

// WaitFor polls cond until it holds, first every 10 ms and backing off to
// every 200 ms (cheap conditions are seen at once, costly ones are not
// hammered). It fails the test, naming what it waited for, when ctx ends
// first.
func WaitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	wait := 10 * time.Millisecond
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s: %v", what, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// Context returns a context that ends after d or with the test.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Key generates a key of alg or fails the test.
func Key(t testing.TB, alg identity.Algorithm) *identity.Key {
	t.Helper()
	k, err := identity.GenerateKey(alg)
	if err != nil {
		t.Fatalf("GenerateKey(%v) error = %v", alg, err)
	}
	return k
}

// BinaryEnv names a prebuilt thingnet binary for ThingnetBinary to use
// instead of building one.
const BinaryEnv = "THINGNET_E2E_BIN"

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// ThingnetBinary builds cmd/thingnet once per test binary and returns its
// path ($THINGNET_E2E_BIN: that binary instead). The build is left in the
// temporary directory for the rest of the run.
func ThingnetBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "thingnet-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "thingnet")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/thingnet/thingnet/cmd/thingnet")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/thingnet: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Goroutines counts the live goroutines, leaving out those whose stack
// contains one of ignore (goroutines a library never ends), and returns
// the stacks it counted.
func Goroutines(ignore ...string) (int, string) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var kept []string
next:
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, leak := range ignore {
			if strings.Contains(g, leak) {
				continue next
			}
		}
		kept = append(kept, g)
	}
	return len(kept), strings.Join(kept, "\n\n")
}

// CheckGoroutines fails the test unless the goroutines (as Goroutines
// counts them with ignore) come back to within 3 of baseline, taken with
// Goroutines before the test started anything. It polls for up to 20 s:
// stopped servers may let goroutines finish a sleep or a back-off first.
func CheckGoroutines(t testing.TB, baseline int, ignore ...string) {
	t.Helper()
	const tolerance = 3
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, stacks := Goroutines(ignore...)
		if n <= baseline+tolerance {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines after stop, baseline %d:\n%s", n, baseline, stacks)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Buffer is a bytes.Buffer safe for one writer (a program's output) and a
// reader (the test) at once.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SwitchAgreement is an agreement document for tests: its owner's call
// "toggle" commands the lamp "on".
const SwitchAgreement = `agreement: switch
description: the owner switches the lamp on
parties:
  lamp: device
  owner: org
state:
  n: int
transitions:
  toggle:
    on: {call: owner}
    do:
      - command: {to: lamp, payload: '"on"'}
      - set: {n: state.n + 1}
`
