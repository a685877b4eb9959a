package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/internal/testutil"
)

// TestDevnetCommand runs the real binary: `thingnet devnet` starts, stops
// cleanly on Ctrl-C (SIGINT), and a second run resumes the same chain.
func TestDevnetCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testutil.ThingnetBinary(t)
	home := t.TempDir()
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	run := func(want string, target int64) int64 {
		cmd := exec.Command(bin, "devnet", "--home", home, "--base-port", fmt.Sprint(base), "--fast", "--fleet", "0")
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		lines := bufio.NewScanner(stdout)
		var out strings.Builder
		for lines.Scan() {
			out.WriteString(lines.Text() + "\n")
			if strings.HasPrefix(lines.Text(), "Ctrl-C stops") {
				break
			}
		}
		if !strings.Contains(out.String(), want) {
			t.Fatalf("devnet printed:\n%s\nwant %q", out.String(), want)
		}
		c := client.New(fmt.Sprintf("127.0.0.1:%d", base+2))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var h int64
		first := true
		for h < target {
			if st, err := c.Status(ctx); err == nil {
				h = st.AppHeight
				if first && target > 3 && h < target-2 {
					t.Fatalf("resumed devnet started at height %d; the first run reached %d", h, target-2)
				}
				first = false
			}
			select {
			case <-ctx.Done():
				t.Fatalf("devnet did not reach height %d (at %d)", target, h)
			case <-time.After(100 * time.Millisecond):
			}
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(stdout)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("devnet exited with %v after SIGINT\n%s", err, rest)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("devnet did not stop within 30s of SIGINT")
		}
		if !strings.Contains(string(rest), "stopped; run again to resume") {
			t.Errorf("shutdown output = %q", rest)
		}
		return h
	}
	h1 := run("created devnet", 3)
	run("resumed devnet", h1+2) // fails unless the chain goes on from where it stopped
}
