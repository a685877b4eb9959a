package datalog

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentAppendsAndReads appends from several goroutines while others
// prove entries against the current root; run it with -race.
func TestConcurrentAppendsAndReads(t *testing.T) {
	l, _ := openTest(t)
	const writers, appends, batch = 4, 25, 7
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	firsts := make(chan uint64, writers*appends)
	for w := range writers {
		wg.Go(func() {
			for a := range appends {
				es := make([][]byte, batch)
				for k := range es {
					es[k] = fmt.Appendf(nil, "writer %d append %d entry %d", w, a, k)
				}
				first, err := l.Append(es)
				if err != nil {
					errs <- fmt.Errorf("Append = %v", err)
					return
				}
				firsts <- first
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				size, root := l.Root()
				if size == 0 {
					continue
				}
				i := size / 3
				e, err := l.Entry(i)
				if err != nil {
					errs <- fmt.Errorf("Entry(%d) = %v", i, err)
					return
				}
				p, err := l.InclusionProof(i, size)
				if err != nil {
					errs <- fmt.Errorf("InclusionProof(%d, %d) = %v", i, size, err)
					return
				}
				if err := VerifyInclusion(e, i, size, p, root); err != nil {
					errs <- fmt.Errorf("VerifyInclusion(%d, %d) = %v", i, size, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	close(firsts)
	seen := map[uint64]bool{}
	for f := range firsts {
		if f%batch != 0 || seen[f] {
			t.Errorf("Append returned first index %d twice or not on a batch boundary", f)
		}
		seen[f] = true
	}
	if got, want := l.Size(), uint64(writers*appends*batch); got != want {
		t.Errorf("Size() = %d; want %d", got, want)
	}
}
