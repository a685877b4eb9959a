package events

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// StreamConfig bounds an SSE endpoint. Zero values get defaults.
type StreamConfig struct {
	MaxClients int           // concurrent streams (default 256); more get 503
	Heartbeat  time.Duration // comment line sent when idle, so proxies keep the stream (default 15 s)
}

// Stream is the server-sent events endpoint over a bus:
//
//	GET /v1/events[?types=block,tx,device][&after=ID]
//
// Each event is sent as "id: N", "event: TYPE", "data: JSON". types filters
// by type or family (device matches device.status); after (or the
// Last-Event-ID header a browser sends when it reconnects) replays the kept
// events since that id. A client that falls behind gets an event of type
// "lost" saying how many events it missed.
type Stream struct {
	bus *Bus
	cfg StreamConfig

	mu      sync.Mutex
	clients int
	closed  chan struct{}
	once    sync.Once
}

// NewStream returns the SSE endpoint over bus.
func NewStream(bus *Bus, cfg StreamConfig) *Stream {
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 256
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	return &Stream{bus: bus, cfg: cfg, closed: make(chan struct{})}
}

// Close ends every open stream (call it before shutting the HTTP server
// down: http.Server.Shutdown waits for streams, which never go idle).
func (s *Stream) Close() { s.once.Do(func() { close(s.closed) }) }

// Clients is the number of open streams.
func (s *Stream) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clients
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// ParseTypes splits a types query value ("block,tx") into a filter.
func ParseTypes(v string) []string {
	var out []string
	for _, t := range strings.Split(v, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func (s *Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, http.StatusInternalServerError, "internal", "this server cannot stream responses")
		return
	}
	q := r.URL.Query()
	var after uint64
	for _, v := range []string{r.Header.Get("Last-Event-ID"), q.Get("after")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("event id %q must be a number (the id of the last event you saw)", v))
			return
		}
		after = n
	}
	select {
	case <-s.closed:
		writeErr(w, http.StatusServiceUnavailable, "shutting_down", "the node is shutting down; reconnect to another node")
		return
	default:
	}
	s.mu.Lock()
	if s.clients >= s.cfg.MaxClients {
		s.mu.Unlock()
		writeErr(w, http.StatusServiceUnavailable, "too_many_streams", fmt.Sprintf("this node serves at most %d event streams; retry later or use another node", s.cfg.MaxClients))
		return
	}
	s.clients++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.clients--
		s.mu.Unlock()
	}()

	sub, gap := s.bus.Subscribe(after, ParseTypes(q.Get("types"))...)
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n: thingnet events\n\n")
	if gap {
		fmt.Fprintf(w, "event: lost\ndata: {\"reason\":\"events since %d are no longer kept\"}\n\n", after)
	}
	fl.Flush()

	tick := time.NewTicker(s.cfg.Heartbeat)
	defer tick.Stop()
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case ev := <-sub.C:
			if lost := sub.Lost(); lost > reported {
				fmt.Fprintf(w, "event: lost\ndata: {\"lost\":%d}\n\n", lost-reported)
				reported = lost
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, ev.Data); err != nil {
				return
			}
			// Send what else is queued before flushing: one write per burst.
			for drained := false; !drained; {
				select {
				case ev := <-sub.C:
					fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, ev.Data)
				default:
					drained = true
				}
			}
			fl.Flush()
		}
	}
}

// ServeRecent answers GET /v1/events/recent?types=...&limit=N: the last
// kept events (default 50), oldest first, for a page that fills its lists
// before it follows the stream.
func (s *Stream) ServeRecent(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > DefaultHistory {
			writeErr(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit must be 1..%d", DefaultHistory))
			return
		}
		limit = n
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"items": s.bus.Recent(limit, ParseTypes(r.URL.Query().Get("types"))...)})
}
