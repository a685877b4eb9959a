// Package events is a node's live event feed: a small in-process bus that
// any component publishes to (Publish(type, data)), a server-sent events
// endpoint (GET /v1/events) that streams it to browsers and programs, and a
// watcher that turns committed CometBFT blocks into block, tx, device and
// anchor events.
package events

import (
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one published event. Data is the publisher's value encoded as
// JSON once, at publication.
type Event struct {
	ID   uint64          `json:"id"`
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// Event types the node itself publishes; other components add their own
// (use a dotted family name, e.g. "message.delivered", so that clients can
// filter by family).
const (
	TypeBlock        = "block"              // BlockData: a committed block
	TypeTx           = "tx"                 // TxData: a committed tx and its result
	TypeDeviceStatus = "device.status"      // DeviceData: registered, suspended, resumed, revoked
	TypeDeviceUpdate = "device.update"      // DeviceData: key rotated, metadata changed
	TypeAnchor       = "anchor"             // AnchorData: a gateway anchored its data log
	TypeOrg          = "org"                // TxData: an organisation was created or its admins changed
	TypeGrant        = "grant"              // TxData: a grant was added or revoked
	TypeValidator    = "validator"          // TxData: a validator-set change
	TypeEvidence     = "validator.evidence" // EvidenceData: evidence of misbehaviour committed; the validator removed
	TypeCommand      = "command"            // CommandData: an agreement issued a command to a device
)

// DefaultHistory is how many recent events a Bus keeps for clients that
// reconnect with Last-Event-ID.
const DefaultHistory = 1024

// subBuffer is how many events a subscriber may fall behind before it
// loses events (and is told so) rather than slowing the publisher.
const subBuffer = 256

// Bus fans events out to subscribers. Publish never blocks. The zero value
// is not usable; a nil *Bus drops everything (so a component can publish
// whether or not the node has a bus).
type Bus struct {
	mu      sync.Mutex
	next    uint64
	history []Event // ring of the last len(history) events, oldest at start
	start   int
	n       int
	subs    map[*Sub]struct{}
	now     func() time.Time

	published atomic.Uint64
	dropped   atomic.Uint64
}

// NewBus returns a bus that keeps the last history events for replay
// (DefaultHistory if history <= 0).
func NewBus(history int) *Bus {
	if history <= 0 {
		history = DefaultHistory
	}
	return &Bus{history: make([]Event, history), subs: map[*Sub]struct{}{}, now: time.Now}
}

// Publish sends an event of type typ with data (any JSON-encodable value)
// to every subscriber whose filter matches. A subscriber whose buffer is
// full loses the event. Data that does not encode as JSON is published as
// {"error": "..."} so that the mistake is visible.
func (b *Bus) Publish(typ string, data any) {
	if b == nil {
		return
	}
	raw, err := json.Marshal(data)
	if err != nil {
		raw, _ = json.Marshal(map[string]string{"error": "event data does not encode as JSON: " + err.Error()})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	ev := Event{ID: b.next, Type: typ, Time: b.now().UTC(), Data: raw}
	i := (b.start + b.n) % len(b.history)
	if b.n == len(b.history) {
		b.start = (b.start + 1) % len(b.history)
	} else {
		b.n++
	}
	b.history[i] = ev
	b.published.Add(1)
	for s := range b.subs {
		if !s.match(typ) {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			s.lost.Add(1)
			b.dropped.Add(1)
		}
	}
}

// Sub is a subscription; read events from C until Close.
type Sub struct {
	C     <-chan Event
	ch    chan Event
	types []string
	bus   *Bus
	lost  atomic.Uint64
	once  sync.Once
}

// match reports whether typ passes the filter: no filter, the type itself,
// or a family prefix ("device" matches "device.status").
func (s *Sub) match(typ string) bool { return Match(s.types, typ) }

// Match reports whether an event type passes a filter of types or type
// families; an empty filter passes everything.
func Match(filter []string, typ string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if f == typ || strings.HasPrefix(typ, f+".") {
			return true
		}
	}
	return false
}

// Lost is how many events this subscriber lost because it fell behind.
func (s *Sub) Lost() uint64 { return s.lost.Load() }

// Close ends the subscription; C is not closed (a publisher may still hold it).
func (s *Sub) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		s.bus.mu.Unlock()
	})
}

// Subscribe returns a subscription to the given types or type families
// (none: everything). With after > 0 it first replays the kept events with
// a larger id, so that a client that reconnects misses nothing that is
// still in the history; replay reports gap=true if events between after
// and the oldest kept one are gone.
func (b *Bus) Subscribe(after uint64, types ...string) (sub *Sub, gap bool) {
	ch := make(chan Event, subBuffer)
	s := &Sub{C: ch, ch: ch, types: types, bus: b}
	b.mu.Lock()
	defer b.mu.Unlock()
	if after > 0 && after < b.next {
		for k := 0; k < b.n; k++ {
			ev := b.history[(b.start+k)%len(b.history)]
			if k == 0 && ev.ID > after+1 {
				gap = true
			}
			if ev.ID <= after || !s.match(ev.Type) {
				continue
			}
			select {
			case ch <- ev:
			default:
				s.lost.Add(1)
			}
		}
	}
	b.subs[s] = struct{}{}
	return s, gap
}

// Recent returns up to n of the kept events matching types, oldest first.
func (b *Bus) Recent(n int, types ...string) []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []Event{}
	for k := b.n - 1; k >= 0 && len(out) < n; k-- {
		ev := b.history[(b.start+k)%len(b.history)]
		if Match(types, ev.Type) {
			out = append(out, ev)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// BusStats counts what a bus did since start.
type BusStats struct {
	Published   uint64 // events published
	Dropped     uint64 // deliveries lost to slow subscribers
	Subscribers int    // open subscriptions
}

// Stats is a snapshot of the bus's counters.
func (b *Bus) Stats() BusStats {
	b.mu.Lock()
	n := len(b.subs)
	b.mu.Unlock()
	return BusStats{Published: b.published.Load(), Dropped: b.dropped.Load(), Subscribers: n}
}
