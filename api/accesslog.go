package api

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// logged allows cross-origin reads, counts every request by route and
// status class (Stats), and
// logs it at debug level (method, path, status, bytes, duration, remote
// address): --log-level debug shows the API's traffic.
func (s *Server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/") {
			// Reads are public: a page served from elsewhere may fetch them
			// (without credentials; requests with an Authorization header
			// need a preflight, which is not granted).
			w.Header().Set("Access-Control-Allow-Origin", "*")
		}
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r) // the mux sets r.Pattern
		s.stats.count(r, rec.status)
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			return
		}
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes), slog.Duration("took", time.Since(start)), slog.String("remote", r.RemoteAddr))
	})
}

// recorder notes a response's status and size; it passes Flush on, for
// event streams.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// requestStats counts requests by route and status class, and proofs
// served. Routes are the mux patterns, so their number is bounded.
type requestStats struct {
	mu     sync.Mutex
	counts map[[2]string]*atomic.Uint64 // {route, "2xx"} -> requests
	proofs atomic.Uint64
}

func (c *requestStats) count(r *http.Request, status int) {
	route := r.Pattern
	if route == "" || strings.HasSuffix(route, " /v1/") || route == "/v1/" {
		route = "unmatched"
	}
	key := [2]string{route, strconv.Itoa(status/100) + "xx"}
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[[2]string]*atomic.Uint64{}
	}
	n := c.counts[key]
	if n == nil {
		n = new(atomic.Uint64)
		c.counts[key] = n
	}
	c.mu.Unlock()
	n.Add(1)
	if status < 300 || status == http.StatusNotFound {
		switch {
		case strings.HasSuffix(route, "/v1/proofs"), strings.HasSuffix(route, "/v1/headers/{height}"), strings.HasSuffix(route, "/v1/readings/{index}"),
			r.URL.Query().Get("prove") == "true" || r.URL.Query().Get("prove") == "1":
			if route != "unmatched" {
				c.proofs.Add(1)
			}
		}
	}
}

// RequestCount is the number of requests of one route with one status class.
type RequestCount struct {
	Route  string // "GET /v1/devices/{id}", or "unmatched"
	Status string // "2xx", "4xx", ...
	Count  uint64
}

// Stats is what the API served since it started.
type Stats struct {
	Requests []RequestCount
	// Proofs counts answers that carry something a light client checks:
	// ?prove=true reads (inclusion or absence), /v1/proofs, signed headers,
	// reading proofs.
	Proofs uint64
}

// Stats is a snapshot of the request counters.
func (s *Server) Stats() Stats {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	out := Stats{Proofs: s.stats.proofs.Load()}
	for k, n := range s.stats.counts {
		out.Requests = append(out.Requests, RequestCount{Route: k[0], Status: k[1], Count: n.Load()})
	}
	return out
}
