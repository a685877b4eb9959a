package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/reading"
)

// feed fans stored readings out to live subscribers. A subscriber that
// falls behind loses readings (and is told so) rather than slowing the
// gateway down.
type feed struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	device string
	ch     chan client.ReadingItem
	lost   int // readings dropped because ch was full; guarded by feed.mu
}

// subscriberBuffer is how many readings a slow subscriber may fall behind.
const subscriberBuffer = 256

func (f *feed) subscribe(device string) *subscriber { return f.subscribeN(device, subscriberBuffer) }

// subscribeN subscribes to device's readings ("": every device's) with a
// buffer of n.
func (f *feed) subscribeN(device string, n int) *subscriber {
	s := &subscriber{device: device, ch: make(chan client.ReadingItem, n)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[*subscriber]struct{}{}
	}
	f.subs[s] = struct{}{}
	return s
}

func (f *feed) unsubscribe(s *subscriber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, s)
}

// publish offers the readings of stored envelopes to their subscribers.
// late is the gateway's late rule (Gateway.late).
func (f *feed) publish(first uint64, ents []*reading.Entry, late func(int64, reading.Reading) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) == 0 {
		return
	}
	for k, e := range ents {
		env := e.Envelope
		for _, r := range env.Readings {
			item := client.NewReadingItem(first+uint64(k), e, r, late(e.ReceivedAt, r))
			for s := range f.subs {
				if s.device != "" && s.device != env.Device {
					continue
				}
				select {
				case s.ch <- item:
				default:
					s.lost++
				}
			}
		}
	}
}

// FollowStored calls fn, from one goroutine, with every reading the gateway
// stores from now on (after it is in the log), until the returned stop is
// called or the gateway closes. fn must keep up: readings that arrive
// while buffer of them wait are lost, counted by lost. For in-process
// consumers that evaluate readings where they arrive (the rules engine).
func (g *Gateway) FollowStored(buffer int, fn func(client.ReadingItem)) (stop func(), lost func() int) {
	sub := g.feed.subscribeN("", buffer)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-g.done:
				return
			case it := <-sub.ch:
				fn(it)
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { g.feed.unsubscribe(sub); close(quit); <-done }) }
	lost = func() int { g.feed.mu.Lock(); defer g.feed.mu.Unlock(); return sub.lost }
	return stop, lost
}

// stream serves GET /v1/readings/stream?device=ID as server-sent events:
// every reading of the device the gateway stores from now on, while the
// caller may read them (re-checked against each new ledger state).
func (g *Gateway) stream(w http.ResponseWriter, r *http.Request) {
	device := r.URL.Query().Get("device")
	caller, err := g.mayRead(r, device)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	st, err := g.ledger.View()
	if err != nil {
		api.WriteError(w, err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		api.WriteError(w, errors.New("streaming unsupported"))
		return
	}
	sub := g.feed.subscribe(device)
	defer g.feed.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": streaming readings of %s\n\n", device)
	flusher.Flush()
	ctx := r.Context()
	lastHeight := st.Height
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.done:
			return
		case item := <-sub.ch:
			if st, err := g.ledger.View(); err == nil && st.Height != lastHeight {
				lastHeight = st.Height
				d, err := st.Device(device)
				if err != nil {
					return
				}
				if acc, err := st.MayRead(caller, d); err != nil || !acc.Allowed {
					fmt.Fprintf(w, "event: revoked\ndata: {}\n\n")
					flusher.Flush()
					return
				}
			}
			b, _ := json.Marshal(item)
			fmt.Fprintf(w, "event: reading\nid: %d\ndata: %s\n\n", item.Index, b)
			flusher.Flush()
		}
	}
}
