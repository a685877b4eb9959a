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
// restart, at least once: a "done" not yet on disk repeats them). The
// lines of firings carried out stay until the rules engine's state is
// next saved (Dispatcher.StateSaved): after a crash, they tell the
// restored engine which conditions had fired since (Engine.Fired).
const OutboxFile = "outbox.jsonl"

// outbox is one rule's outbox file.
type outbox struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	size    int64 // the file's length
	pending int   // firings written and not yet done
	off     bool  // a write failed: the file no longer matches the queue
	closed  bool
	// lastFired is the last firing of each subject the file held when it
	// was opened (Dispatcher.FiredAtStart).
	lastFired []Firing
}

var doneLine = []byte("done\n")

// openOutbox opens the outbox in dir, returning the firings still pending
// there (oldest first), at most max of them. The outbox's lastFired holds
// the last firing of each subject the file had, carried out or not. The
// file is rewritten to hold each of those carried out as a firing and its
// "done", then the returned firings: until the engine's state is saved
// again (compact), a crash still finds them.
func openOutbox(dir string, max int) (*outbox, []Firing, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, OutboxFile)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	pending, last, err := parseOutbox(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	dropped := 0
	if len(pending) > max {
		dropped, pending = len(pending)-max, pending[:max]
	}
	kept := map[Firing]bool{}
	for _, f := range pending {
		kept[f] = true
	}
	var buf bytes.Buffer
	for _, f := range last {
		if !kept[f] {
			if err := writeLine(&buf, f); err != nil {
				return nil, nil, err
			}
			buf.Write(doneLine)
		}
	}
	for _, f := range pending {
		if err := writeLine(&buf, f); err != nil {
			return nil, nil, err
		}
	}
	o := &outbox{path: path, pending: len(pending), lastFired: last}
	if err := o.rewrite(buf.Bytes()); err != nil {
		return nil, nil, err
	}
	if dropped > 0 {
		err = errDroppedAtStart{dropped}
	}
	return o, pending, err
}

// writeLine writes f's line to buf.
func writeLine(buf *bytes.Buffer, f Firing) error {
	line, err := json.Marshal(f)
	if err != nil {
		return err
	}
	buf.Write(append(line, '\n'))
	return nil
}

// rewrite replaces the outbox file with b (durably) and opens it to append.
func (o *outbox) rewrite(b []byte) error {
	if err := atomicfile.WriteFile(o.path, b); err != nil {
		return err
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if o.f != nil {
		o.f.Close()
	}
	o.f, o.size = f, int64(len(b))
	return nil
}

// mark is where the outbox's file ends now (compact).
func (o *outbox) mark() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.size
}

// compact drops the lines before mark that are carried out: the engine's
// state saved after mark was taken holds their firings. The firings still
// pending before mark, and every line after it, stay.
func (o *outbox) compact(mark int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.off || o.closed || mark == 0 {
		return nil
	}
	b, err := os.ReadFile(o.path)
	if err != nil {
		return err
	}
	if int64(len(b)) < mark || (mark > 0 && b[mark-1] != '\n') {
		return fmt.Errorf("rules outbox %s: %d bytes, marked at %d", o.path, len(b), mark)
	}
	if !bytes.HasPrefix(b, doneLine) && !bytes.Contains(b[:mark], append([]byte{'\n'}, doneLine...)) {
		return nil // nothing carried out before mark: no rewrite, no fsync
	}
	before, _, err := parseOutbox(b[:mark])
	if err != nil {
		return fmt.Errorf("rules outbox %s: %w", o.path, err)
	}
	var buf bytes.Buffer
	for _, f := range before {
		if err := writeLine(&buf, f); err != nil {
			return err
		}
	}
	buf.Write(b[mark:])
	return o.rewrite(buf.Bytes())
}

// errDroppedAtStart says that an outbox held more firings than the queue.
type errDroppedAtStart struct{ n int }

func (e errDroppedAtStart) Error() string {
	return fmt.Sprintf("%d firings dropped: the outbox held more than the rule's queue", e.n)
}

// parseOutbox returns the firings of an outbox's lines not yet done, and
// the last firing of each subject (Firing.subject) of all its lines, in
// the order of the lines. A last line cut short by a crash (no newline)
// is ignored: its firing was never queued.
func parseOutbox(b []byte) (pending, last []Firing, err error) {
	b = b[:bytes.LastIndexByte(b, '\n')+1] // without a last line cut short
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	lastAt := map[string]int{} // subject -> its index in last
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if bytes.Equal(line, doneLine[:len(doneLine)-1]) {
			if len(pending) == 0 {
				return nil, nil, fmt.Errorf("line %d: done with no firing pending", n)
			}
			pending = pending[1:]
			continue
		}
		var f Firing
		if err := json.Unmarshal(line, &f); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		pending = append(pending, f)
		if i, ok := lastAt[f.Rule+"\x00"+f.subject()]; ok {
			last[i] = f
		} else {
			lastAt[f.Rule+"\x00"+f.subject()] = len(last)
			last = append(last, f)
		}
	}
	return pending, last, sc.Err()
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
	line = append(line, '\n')
	if _, err := o.f.Write(line); err != nil {
		o.off = true
		return true, fmt.Errorf("writing the rule's outbox (now off: firings in memory only): %w", err)
	}
	if err := o.f.Sync(); err != nil {
		o.off = true
		return true, fmt.Errorf("syncing the rule's outbox (now off: firings in memory only): %w", err)
	}
	o.pending++
	o.size += int64(len(line))
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
	if _, err := o.f.Write(doneLine); err != nil {
		o.off = true
		return fmt.Errorf("writing the rule's outbox (now off: firings in memory only): %w", err)
	}
	o.size += int64(len(doneLine))
	return nil
}

func (o *outbox) close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	return o.f.Close()
}
