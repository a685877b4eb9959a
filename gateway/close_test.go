package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/thingnet/thingnet/reading"
)

// TestCloseAfterIngesterGaveUp: a device that stops waiting for its answer
// (its request cancelled, as when a fleet stops) leaves the answer unread;
// Close must still return (it hung, answering that batch a second time).
func TestCloseAfterIngesterGaveUp(t *testing.T) {
	tn := startTestNet(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	raw, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(1, 20))
	if _, err := tn.gw.IngestIndex(ctx, "", raw, "127.0.0.1"); err == nil {
		t.Log("the answer came before the cancellation was seen")
	}
	deadline := time.Now().Add(time.Minute)
	for tn.gw.Stats().Accepted == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the reading was never stored")
		}
		time.Sleep(10 * time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- tn.gw.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return within 30 s")
	}
}
