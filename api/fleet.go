package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/fleet"
)

// fleetRoutes serves fleet health (docs/management.md, "Fleet health").
func (s *Server) fleetRoutes() {
	s.handle("GET /v1/fleet/{org}", s.getFleet)
}

// SetFleetCensus gives the server its gateway's fleet census (the counts
// GET /v1/fleet/{org} shows to callers who are not signed in) and its
// tracker's hint of where each device's latest readings start
// (fleet.Tracker.Since), so that the signed-in view reads a page per
// device, not its whole look-back.
func (s *Server) SetFleetCensus(census func() (*fleet.Summary, error), since func(device string) time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.census, s.since = census, since
}

// getFleet answers GET /v1/fleet/{org}?class=&label=k=v&missed=&wake=: the
// organisation's devices with their last reading on this node's gateway,
// their state (ok, silent, never, or their status), their last status
// report and the counts by class and state, silent devices first. It is
// client.FleetHealth run against this server's own routes with the
// caller's credentials, so the read rule of GET /v1/readings decides,
// device by device, exactly as it would for the caller: another
// organisation's admin is refused. To a caller who is not signed in, and
// with view=counts, it answers the public view instead (fleetCounts).
func (s *Server) getFleet(r *http.Request) (any, error) {
	q := r.URL.Query()
	if r.Header.Get("Authorization") == "" || q.Get("view") == "counts" {
		return s.fleetCounts(r.PathValue("org"), q.Get("class"))
	}
	o := client.FleetOptions{Class: q.Get("class")}
	var err error
	if o.Labels, err = client.ParseLabels(q["label"]); err != nil {
		return nil, NewError(http.StatusBadRequest, "bad_request", err.Error())
	}
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
	s.mu.Lock()
	o.Since = s.since
	s.mu.Unlock()
	c := client.New("http://" + r.Host) // the transport serves it in process; the name is this node's
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

// fleetCounts is the public view of an organisation's fleet: the
// gateway's census counts by class and state (judged with its [fleet]
// settings), which anyone may see as they may see /metrics — no device,
// no last-seen time, no value.
func (s *Server) fleetCounts(org, class string) (any, error) {
	s.mu.Lock()
	census := s.census
	s.mu.Unlock()
	if census == nil {
		return nil, NewError(http.StatusNotFound, "not_found", "this node runs no gateway: it has no fleet census (sign in to read the devices' readings)")
	}
	sum, err := census()
	if err != nil {
		return nil, err
	}
	f := &client.Fleet{Org: org, Now: sum.At, Missed: sum.Missed, Devices: []client.DeviceHealth{}, Counts: map[string]map[string]int{}, Public: true}
	for _, g := range sum.Org(org) {
		if class == "" || g.Class == class {
			f.Counts[g.Class] = g.States
		}
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
