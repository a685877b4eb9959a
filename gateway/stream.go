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

func (f *feed) subscribe(device string) *subscriber {
	s := &subscriber{device: device, ch: make(chan client.ReadingItem, subscriberBuffer)}
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
				if s.device != env.Device {
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
