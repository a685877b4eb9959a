package datalog

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// crashChildEnv names the environment variable that makes TestCrashChild
// run, appending to the log in the directory it holds.
const crashChildEnv = "DATALOG_CRASH_CHILD_DIR"

// TestCrashChild is the child process of TestCrashRecovery: it appends
// batches to the log forever (until killed), printing "ack FIRST COUNT" once
// each Append has returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	l, err := Open(Config{Dir: dir})
	if err != nil {
		fmt.Printf("error Open(%s) = %v\n", dir, err)
		os.Exit(2)
	}
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for {
		n := 1 + rng.IntN(40)
		want := l.Size()
		first, err := l.Append(testEntries(want, n))
		if err != nil || first != want {
			fmt.Printf("error Append(%d entries) = %d, %v; want %d, nil\n", n, first, err, want)
			os.Exit(2)
		}
		// Unbuffered: the parent sees the line as soon as it is written.
		fmt.Printf("ack %d %d\n", first, n)
	}
}

// ack is an acknowledged Append: entries [first, first+count).
type ack struct{ first, count uint64 }

// runAndKill runs TestCrashChild on dir, SIGKILLs it after it has
// acknowledged killAfter Appends, and returns every acknowledgement it
// printed before dying.
func runAndKill(t *testing.T, dir string, killAfter int) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("StdoutPipe() = %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s = %v", os.Args[0], err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix.
				t.Errorf("kill child = %v", err)
			}
		}
	}
	defer kill()

	var acks []ack
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		var a ack
		if _, err := fmt.Sscanf(line, "ack %d %d", &a.first, &a.count); err != nil {
			if strings.HasPrefix(line, "error ") {
				t.Errorf("child: %s", line)
			}
			continue
		}
		acks = append(acks, a)
		if len(acks) == killAfter {
			kill()
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before being killed: %v; stderr:\n%s", err, stderr.String())
	}
	if len(acks) < killAfter {
		t.Fatalf("child acknowledged %d appends; want at least %d", len(acks), killAfter)
	}
	return acks
}

// TestCrashRecovery SIGKILLs a process appending to the log, several times,
// and checks after each that every acknowledged entry is present and
// provable and that the log still appends correctly.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	dir := t.TempDir()
	for round := range 3 {
		acks := runAndKill(t, dir, 5+20*round)
		l, err := Open(Config{Dir: dir})
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL = %v; want nil", round, err)
		}
		size, root := l.Root()
		last := acks[len(acks)-1]
		if end := last.first + last.count; size < end {
			t.Fatalf("round %d: Size() after SIGKILL = %d; want at least %d (acknowledged)", round, size, end)
		}
		acked := map[uint64]bool{}
		for _, a := range acks {
			for i := a.first; i < a.first+a.count; i++ {
				acked[i] = true
			}
		}
		// Every entry, acknowledged or not, must be the one written; check
		// proofs of all acknowledged ones.
		for i := range size {
			e, err := l.Entry(i)
			if err != nil || !bytes.Equal(e, testEntry(i)) {
				t.Fatalf("round %d: Entry(%d) = %q, %v; want %q, nil", round, i, e, err, testEntry(i))
			}
			if !acked[i] {
				continue
			}
			p, err := l.InclusionProof(i, size)
			if err != nil {
				t.Fatalf("round %d: InclusionProof(%d, %d) = %v", round, i, size, err)
			}
			if err := VerifyInclusion(e, i, size, p, root); err != nil {
				t.Fatalf("round %d: VerifyInclusion(%d, %d) = %v; want nil", round, i, size, err)
			}
		}
		t.Logf("round %d: %d appends acknowledged up to size %d, recovered size %d", round, len(acks), last.first+last.count, size)

		// The log appends correctly after recovery.
		mustAppend(t, l, 3)
		newSize, newRoot := l.Root()
		p, err := l.ConsistencyProof(size, newSize)
		if err != nil {
			t.Fatalf("round %d: ConsistencyProof(%d, %d) = %v", round, size, newSize, err)
		}
		if err := VerifyConsistency(size, newSize, root, newRoot, p); err != nil {
			t.Fatalf("round %d: VerifyConsistency(%d, %d) = %v; want nil", round, size, newSize, err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("round %d: Close() = %v", round, err)
		}
	}
}
