package reading

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestSeqTracker(t *testing.T) {
	type step struct {
		op   string // "check", "advance" or "accept"
		dev  string
		seqs []uint64
		want error
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"new device starts above 0", []step{
			{"check", "a", []uint64{1}, nil},
			{"check", "a", []uint64{0}, ErrReplay},
			{"advance", "a", []uint64{5}, nil},
			{"check", "a", []uint64{5}, ErrReplay},
			{"check", "a", []uint64{4}, ErrReplay},
			{"check", "a", []uint64{6}, nil},
			{"check", "a", []uint64{1000}, nil}, // gaps are fine
		}},
		{"batch", []step{
			{"advance", "a", []uint64{3, 4, 7}, nil},
			{"check", "a", []uint64{7, 8}, ErrReplay},
			{"check", "a", []uint64{6, 8}, ErrReplay},
			{"advance", "a", []uint64{8, 9}, nil},
			{"check", "a", []uint64{9}, ErrReplay},
		}},
		{"devices are independent", []step{
			{"advance", "a", []uint64{10}, nil},
			{"advance", "b", []uint64{1}, nil},
			{"check", "b", []uint64{2}, nil},
			{"check", "a", []uint64{2}, ErrReplay},
		}},
		{"accept never lowers", []step{
			{"accept", "a", []uint64{10}, nil},
			{"accept", "a", []uint64{3}, nil},
			{"check", "a", []uint64{10}, ErrReplay},
			{"check", "a", []uint64{11}, nil},
		}},
		{"advance refuses a replay", []step{
			{"advance", "a", []uint64{2}, nil},
			{"advance", "a", []uint64{2}, ErrReplay},
			{"advance", "a", []uint64{1, 3}, ErrReplay},
			{"check", "a", []uint64{3}, nil}, // the refused batch changed nothing
		}},
		{"bad input", []step{
			{"check", "a", nil, ErrInvalid},
			{"check", "a", []uint64{2, 2}, ErrInvalid},
			{"advance", "a", []uint64{3, 1}, ErrInvalid},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewSeqTracker(10)
			for i, s := range tt.steps {
				var err error
				switch s.op {
				case "check":
					err = tr.Check(s.dev, s.seqs)
				case "advance":
					err = tr.Advance(s.dev, s.seqs)
				case "accept":
					tr.Accept(s.dev, s.seqs[0])
				}
				if s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
					t.Fatalf("step %d: %s(%s, %v) error = %v; want %v", i, s.op, s.dev, s.seqs, err, s.want)
				}
			}
		})
	}
}

func TestSeqTrackerReplayMessage(t *testing.T) {
	tr := NewSeqTracker(1)
	tr.Accept("did:key:zDev", 7)
	err := tr.Check("did:key:zDev", []uint64{5, 9})
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("Check() error = %v; want ErrReplay", err)
	}
	for _, want := range []string{"did:key:zDev", "seq 5", "highest accepted, 7"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check() error = %q; want it to mention %q", err, want)
		}
	}
}

func TestSeqTrackerEviction(t *testing.T) {
	tr := NewSeqTracker(3)
	for i, d := range []string{"a", "b", "c"} {
		tr.Accept(d, uint64(i+1))
	}
	if tr.State().Partial {
		t.Fatal("partial before any eviction")
	}
	// Touch a, so that b is the least recently used.
	if err := tr.Check("a", []uint64{2}); err != nil {
		t.Fatal(err)
	}
	tr.Accept("d", 4)
	if tr.Len() != 3 {
		t.Fatalf("Len() = %d; want 3", tr.Len())
	}
	if _, ok := tr.Highest("b"); ok {
		t.Fatal("b was not evicted")
	}
	for _, d := range []string{"a", "c", "d"} {
		if _, ok := tr.Highest(d); !ok {
			t.Fatalf("%s was evicted", d)
		}
	}
	// b's state is lost: its old readings could be replays, so b is
	// unknown until its highest is loaded again; so is any new device.
	for _, d := range []string{"b", "e"} {
		if err := tr.Check(d, []uint64{1}); !errors.Is(err, ErrSeqUnknown) {
			t.Fatalf("Check(%s) error = %v; want ErrSeqUnknown", d, err)
		}
		if err := tr.Advance(d, []uint64{1}); !errors.Is(err, ErrSeqUnknown) {
			t.Fatalf("Advance(%s) error = %v; want ErrSeqUnknown", d, err)
		}
	}
	tr.Accept("b", 2) // loaded from durable storage
	if err := tr.Check("b", []uint64{2}); !errors.Is(err, ErrReplay) {
		t.Fatalf("Check(b, 2) error = %v; want ErrReplay", err)
	}
	if err := tr.Check("b", []uint64{3}); err != nil {
		t.Fatalf("Check(b, 3) error = %v", err)
	}
}

func TestSeqTrackerBound(t *testing.T) {
	const maxDev = 100
	tr := NewSeqTracker(maxDev)
	for i := range 10 * maxDev {
		tr.Accept(fmt.Sprintf("dev-%d", i), 1)
		if tr.Len() > maxDev {
			t.Fatalf("Len() = %d after %d devices; want at most %d", tr.Len(), i+1, maxDev)
		}
	}
	s := tr.State()
	if len(s.Devices) != maxDev || !s.Partial {
		t.Fatalf("State() has %d devices, partial %v; want %d, true", len(s.Devices), s.Partial, maxDev)
	}
	if s.Devices[0].Device != fmt.Sprintf("dev-%d", 10*maxDev-1) {
		t.Errorf("most recent device = %s", s.Devices[0].Device)
	}
}

func TestSeqTrackerState(t *testing.T) {
	tr := NewSeqTracker(4)
	tr.Accept("a", 1)
	tr.Accept("b", 2)
	tr.Accept("c", 3)
	s := tr.State()
	want := []DeviceSeq{{"c", 3}, {"b", 2}, {"a", 1}}
	if fmt.Sprint(s.Devices) != fmt.Sprint(want) || s.Partial {
		t.Fatalf("State() = %+v; want %+v, not partial", s, want)
	}
	// Restored, the tracker behaves the same and keeps the LRU order.
	r := RestoreSeqTracker(4, s)
	if fmt.Sprint(r.State()) != fmt.Sprint(s) {
		t.Fatalf("restored State() = %+v; want %+v", r.State(), s)
	}
	if err := r.Check("b", []uint64{2}); !errors.Is(err, ErrReplay) {
		t.Fatalf("restored Check(b, 2) error = %v; want ErrReplay", err)
	}
	// Restoring into a smaller tracker drops the least recently used and
	// makes it partial.
	small := RestoreSeqTracker(2, s)
	got := small.State()
	if fmt.Sprint(got.Devices) != fmt.Sprint(want[:2]) || !got.Partial {
		t.Fatalf("RestoreSeqTracker(2) State() = %+v; want %+v, partial", got, want[:2])
	}
	if err := small.Check("a", []uint64{5}); !errors.Is(err, ErrSeqUnknown) {
		t.Fatalf("Check(dropped device) error = %v; want ErrSeqUnknown", err)
	}
	// A duplicate keeps its first, most recent, entry.
	dup := RestoreSeqTracker(4, SeqState{Devices: []DeviceSeq{{"a", 9}, {"a", 1}}})
	if h, _ := dup.Highest("a"); h != 9 || dup.Len() != 1 {
		t.Fatalf("restored duplicate: highest %d, %d devices; want 9, 1", h, dup.Len())
	}
	// A partial state stays partial.
	if !RestoreSeqTracker(4, SeqState{Partial: true}).State().Partial {
		t.Fatal("partial state restored as complete")
	}
}

func TestNewSeqTrackerPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewSeqTracker(0) did not panic")
		}
	}()
	NewSeqTracker(0)
}

// TestSeqTrackerConcurrent checks that of many concurrent Advance calls
// with the same sequence number exactly one succeeds (run with -race).
func TestSeqTrackerConcurrent(t *testing.T) {
	tr := NewSeqTracker(8)
	const workers, seqs = 8, 200
	var ok [seqs + 1]atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			dev := fmt.Sprintf("dev-%d", w%2)
			for s := uint64(1); s <= seqs; s++ {
				if tr.Check(dev, []uint64{s}) != nil {
					continue
				}
				if tr.Advance(dev, []uint64{s}) == nil && w%2 == 0 {
					ok[s].Add(1)
				}
			}
			_ = tr.State()
		})
	}
	wg.Wait()
	for s := 1; s <= seqs; s++ {
		if n := ok[s].Load(); n > 1 {
			t.Fatalf("seq %d accepted %d times", s, n)
		}
	}
	if h, _ := tr.Highest("dev-0"); h != seqs {
		t.Fatalf("highest = %d; want %d", h, seqs)
	}
}
