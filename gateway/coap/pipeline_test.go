package coap

import (
	"context"
	"sync"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// pipeIngest is fakeIngest as an edge.Pipeliner: Submit checks and stores
// the reading at once, in the order it is called (as the gateway's queue
// does), and answers on a channel.
type pipeIngest struct {
	*fakeIngest
	mu      sync.Mutex
	submits int
}

func (p *pipeIngest) Submit(ctx context.Context, dev string, payload []byte, source string) <-chan error {
	p.mu.Lock()
	p.submits++
	p.mu.Unlock()
	c := make(chan error, 1)
	c <- p.Ingest(ctx, dev, payload, source)
	return c
}

// TestPipelinedInOrder: one endpoint sends many confirmable POSTs without
// waiting for their answers; each is handled on its own goroutine, yet they
// reach a pipelining Ingestor in the order they arrived, so every one of
// them (rising sequence numbers) is stored and answered 2.04, none refused
// as a replay of a later one.
func TestPipelinedInOrder(t *testing.T) {
	p := &pipeIngest{fakeIngest: newFakeIngest()}
	e := start(t, func(c *Config) { c.Ingest = p })
	dev := newDevice(t, p.fakeIngest)
	r := e.raw(t, "")
	const n = 200
	for i := range n {
		r.send(postR(t, uint16(1000+i), []byte{byte(i >> 8), byte(i)}, dev.reading(t)))
	}
	got := map[int32]codes.Code{}
	for range n {
		m := decode(t, r.must())
		if m.Type != message.Acknowledgement {
			t.Fatalf("answer of type %v; want ACK", m.Type)
		}
		got[m.MessageID] = m.Code
	}
	for i := range n {
		if c := got[int32(1000+i)]; c != codes.Changed {
			t.Errorf("request %d (seq %d) answered %v; want %v", i, i+1, c, codes.Changed)
		}
	}
	if s := p.storedCount(); s != n {
		t.Errorf("%d readings stored; want %d", s, n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.submits != n {
		t.Errorf("Submit called %d times; want %d (every request through the pipeline)", p.submits, n)
	}
}
