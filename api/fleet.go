package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/thingnet/thingnet/client"
)

// fleetRoutes serves fleet health (docs/management.md, "Fleet health").
func (s *Server) fleetRoutes() {
	s.handle("GET /v1/fleet/{org}", s.getFleet)
}

// getFleet answers GET /v1/fleet/{org}?class=&missed=&wake=: the
// organisation's devices with their last reading on this node's gateway,
// their state (ok, silent, never, or their status) and the counts by
// class and state, silent devices first. It is client.FleetHealth run
// against this server's own routes with the caller's credentials, so the
// read rule of GET /v1/readings decides, device by device, exactly as it
// would for the caller: another organisation's admin is refused.
func (s *Server) getFleet(r *http.Request) (any, error) {
	q := r.URL.Query()
	o := client.FleetOptions{Class: q.Get("class")}
	if v := q.Get("missed"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, NewError(http.StatusBadRequest, "bad_request", "missed must be 1..1000 wake intervals")
		}
		o.Missed = n
	}
	if v := q.Get("wake"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return nil, NewError(http.StatusBadRequest, "bad_request", "wake must be a duration of at least 1s, e.g. 30s")
		}
		o.Wake = d
	}
	c := client.New("http://in-process")
	c.HTTP = &http.Client{Transport: selfTransport{h: s.mux, auth: r.Header.Get("Authorization")}}
	f, err := client.FleetHealth(r.Context(), []*client.Client{c}, r.PathValue("org"), o)
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) {
			return nil, NewError(ce.Status, ce.Code, err.Error())
		}
		return nil, err
	}
	return f, nil
}

// selfTransport serves a request with the server's own handler, with the
// caller's credentials.
type selfTransport struct {
	h    http.Handler
	auth string
}

func (t selfTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t.auth != "" {
		r.Header.Set("Authorization", t.auth)
	}
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	return w.Result(), nil
}
