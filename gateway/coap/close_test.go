package coap

import (
	"runtime"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestCloseReleasesEverything: Close ends the sessions, cancels a blocked
// Ingest (whose reading is then not acknowledged) and an open upload, and
// leaves no goroutine behind; a second Close is a no-op.
func TestCloseReleasesEverything(t *testing.T) {
	baseline := settledGoroutines()
	e := start(t, nil)
	dev := newDevice(t, e.ingest)
	for i := range 20 {
		r := e.raw(t, "")
		if ans := r.exchange(postR(t, uint16(i), nil, dev.reading(t))); ans.Code != codes.Changed {
			t.Fatalf("client %d: %v; want 2.04", i, ans.Code)
		}
	}
	up := e.raw(t, "")
	if ans := up.exchange(postR(t, 1, nil, make([]byte, 1024), block1(0, true))); ans.Code != codes.Continue {
		t.Fatalf("upload: %v; want 2.31", ans.Code)
	}
	e.ingest.setGate(true)
	blocked := e.raw(t, "")
	blocked.send(postR(t, 1, nil, dev.reading(t)))
	e.ingest.waitEntered(t)
	// A handler sends its answer before it ends: the earlier clients' may
	// still be finishing for a moment after their answers arrived.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st := e.srv.Stats()
		if st.Sessions == 22 && st.Transfers == 1 && st.InFlight == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats sessions %d transfers %d in flight %d; want 22, 1, 1", st.Sessions, st.Transfers, st.InFlight)
		}
	}

	begin := time.Now()
	if err := e.srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Close took %s", d)
	}
	if err := e.srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if b := blocked.recv(200 * time.Millisecond); b != nil {
		t.Errorf("the reading whose Ingest was cancelled got an answer: % x", b)
	}
	if st := e.srv.Stats(); st.Sessions != 0 || st.Transfers != 0 || st.InFlight != 0 {
		t.Errorf("after Close: Stats sessions %d transfers %d in flight %d; want 0", st.Sessions, st.Transfers, st.InFlight)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline+2 {
			t.Logf("goroutines: %d before Start, %d after Close", baseline, n)
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before Start, %d after Close:\n%s", baseline, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func settledGoroutines() int {
	time.Sleep(50 * time.Millisecond) // let earlier tests' goroutines end
	runtime.GC()
	return runtime.NumGoroutine()
}
