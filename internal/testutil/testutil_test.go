package testutil

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
)

func TestWaitFor(t *testing.T) {
	var n atomic.Int32
	WaitFor(t, Context(t, 5*time.Second), "the third poll", func() bool { return n.Add(1) == 3 })
	if got := n.Load(); got != 3 {
		t.Errorf("WaitFor polled %d times; want 3", got)
	}
}

func TestGoroutines(t *testing.T) {
	base, _ := Goroutines()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { <-stop; close(done) }()
	if n, _ := Goroutines(); n != base+1 {
		t.Errorf("Goroutines() = %d with one started; want %d", n, base+1)
	}
	if n, _ := Goroutines("testutil.TestGoroutines.func"); n != base {
		t.Errorf("Goroutines(ignoring it) = %d; want %d", n, base)
	}
	close(stop)
	<-done
	CheckGoroutines(t, base)
}

func TestKey(t *testing.T) {
	for _, alg := range []identity.Algorithm{identity.Ed25519, identity.P256} {
		if a, b := Key(t, alg), Key(t, alg); a.ID() == b.ID() {
			t.Errorf("Key(%v) returned the same key twice", alg)
		}
	}
}
