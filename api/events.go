package api

import (
	"net/http"

	"github.com/thingnet/thingnet/events"
)

// ServeEvents serves the bus as server-sent events at GET /v1/events (and
// its recent history as JSON at GET /v1/events/recent), and ends the
// streams when the server shuts down. It returns the stream, for metrics.
func (s *Server) ServeEvents(bus *events.Bus) *events.Stream {
	st := events.NewStream(bus, events.StreamConfig{})
	s.MountHandler("GET /v1/events", st)
	s.MountHandler("GET /v1/events/recent", http.HandlerFunc(st.ServeRecent))
	s.OnShutdown(st.Close)
	return st
}

// OnShutdown registers f to run when Shutdown starts, before the server
// waits for requests in flight: streams end there.
func (s *Server) OnShutdown(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onShutdown = append(s.onShutdown, f)
}
