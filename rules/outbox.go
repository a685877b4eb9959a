package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/thingnet/thingnet/internal/atomicfile"
)

// OutboxFile is a rule's outbox in its state directory: one line per
// firing queued for the rule's actions (its JSON), and the line "done"
// each time the oldest pending firing's actions were carried out. A
// firing is written and synced to disk before it is queued, so a firing
// survives a crash of the node (its actions are carried out after the
// restart, at least once: a "done" not yet on disk repeats them).
const OutboxFile = "outbox.jsonl"

// outbox is one rule's outbox file.
type outbox struct {
	mu      sync.Mutex
	f       *os.File
	pending int  // firings written and not yet done
	off     bool // a write failed: the file no longer matches the queue
}

var doneLine = []byte("done\n")

// openOutbox opens the outbox in dir, returning the firings still pending
// there (oldest first), at most max of them:
// the file is rewritten to hold exactly the returned firings.
func openOutbox(dir string, max int) (*outbox, []Firing, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, OutboxFile)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	pending, err := parseOutbox(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	dropped := 0
	if len(pending) > max {
		dropped, pending = len(pending)-max, pending[:max]
	}
	var buf bytes.Buffer
	for _, f := range pending {
		line, err := json.Marshal(f)
		if err != nil {
			return nil, nil, err
		}
		buf.Write(append(line, '\n'))
	}
	if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if dropped > 0 {
		err = errDroppedAtStart{dropped}
	}
	return &outbox{f: f, pending: len(pending)}, pending, err
}

// errDroppedAtStart says that an outbox held more firings than the queue.
type errDroppedAtStart struct{ n int }

func (e errDroppedAtStart) Error() string {
	return fmt.Sprintf("%d firings dropped: the outbox held more than the rule's queue", e.n)
}

// parseOutbox returns the firings of an outbox's lines not yet done. A
// last line cut short by a crash (no newline) is ignored: its firing was
// never queued.
func parseOutbox(b []byte) ([]Firing, error) {
	var out []Firing
	b = b[:bytes.LastIndexByte(b, '\n')+1] // without a last line cut short
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if bytes.Equal(line, doneLine[:len(doneLine)-1]) {
			if len(out) == 0 {
				return nil, fmt.Errorf("line %d: done with no firing pending", n)
			}
			out = out[1:]
			continue
		}
		var f Firing
		if err := json.Unmarshal(line, &f); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, f)
	}
	return out, sc.Err()
}

// add queues f with queue (false: the queue is full, f is dropped) and
// writes and syncs it, under the outbox's lock (the worker's done waits for
// it, so that a firing's line always precedes its "done"). After a failed
// write the outbox is off: firings are queued in memory only, since its
// lines no longer match the queue.
func (o *outbox) add(f Firing, queue func() bool) (queued bool, err error) {
	line, err := json.Marshal(f)
	if err != nil {
		return false, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !queue() {
		return false, nil
	}
	if o.off {
		return true, nil
	}
	if _, err := o.f.Write(append(line, '\n')); err != nil {
		o.off = true
		return true, fmt.Errorf("writing the rule's outbox (now off: firings in memory only): %w", err)
	}
	if err := o.f.Sync(); err != nil {
		o.off = true
		return true, fmt.Errorf("syncing the rule's outbox (now off: firings in memory only): %w", err)
	}
	o.pending++
	return true, nil
}

// done marks the oldest pending firing's actions carried out.
func (o *outbox) done() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.off {
		return nil
	}
	if o.pending == 0 {
		return errors.New("rules outbox: done with no firing pending")
	}
	o.pending--
	if o.pending == 0 {
		// Nothing pending: start the file again (a crash between the two
		// leaves either the lines or nothing, both meaning nothing pending).
		return o.f.Truncate(0)
	}
	_, err := o.f.Write(doneLine)
	return err
}

func (o *outbox) close() error { return o.f.Close() }
