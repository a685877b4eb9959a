package api

import (
	"net/http"

	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// configRoutes serves desired configurations (docs/management.md). They
// are ledger data, public by construction like every record (any full
// node can read them), so these routes check no caller; what a device
// reported applying is a reading, served by GET /v1/readings under the
// read rule.
func (s *Server) configRoutes() {
	s.handle("GET /v1/config/{org}/{scope}/{name}", s.getConfig)
	s.handle("GET /v1/config/{org}/{scope}/{name}/history", s.getConfigHistory)
	s.handle("GET /v1/devices/{id}/config", s.getDesired)
}

// getConfig answers GET /v1/config/{org}/{scope}/{name}: the current
// desired configuration of a device, class or label, with ?prove=true its
// proof (the one a device checks).
func (s *Server) getConfig(r *http.Request) (any, error) {
	org, scope, name := r.PathValue("org"), r.PathValue("scope"), r.PathValue("name")
	if err := record.ValidateConfigTarget(scope, name); err != nil {
		// No configuration has such a target: a missing record, not a bad request.
		return nil, notFound("no configuration " + org + "/" + scope + "/" + name + ": " + err.Error())
	}
	return s.record(r, record.ConfigKey(org, scope, name), func(st *ledger.State) (any, error) {
		return st.Config(org, scope, name)
	})
}

// getConfigHistory answers GET /v1/config/{org}/{scope}/{name}/history
// ?after=VERSION&limit=N: every version set, oldest first.
func (s *Server) getConfigHistory(r *http.Request) (any, error) {
	org, scope, name := r.PathValue("org"), r.PathValue("scope"), r.PathValue("name")
	if err := record.ValidateConfigTarget(scope, name); err != nil {
		// No configuration has such a target: a missing record, not a bad request.
		return nil, notFound("no configuration " + org + "/" + scope + "/" + name + ": " + err.Error())
	}
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	limit, err := limitParam(r)
	if err != nil {
		return nil, err
	}
	after, err := uintQuery(r, "after")
	if err != nil {
		return nil, err
	}
	rs, err := st.ConfigHistory(org, scope, name, after, limit)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, rs, limit, func(c record.ConfigRecord) string { return seqCursor(c.Version) }), nil
}

// getDesired answers GET /v1/devices/{id}/config: the device's effective
// desired configuration, its layers in merge order (class, labels,
// device) and those whose right has ended.
func (s *Server) getDesired(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	return st.Desired(r.PathValue("id"))
}
