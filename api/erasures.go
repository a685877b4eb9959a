package api

import (
	"net/http"
	"strconv"

	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// erasureRoutes serves organisations' privacy policies and the ledger's
// erasure records (record/privacy.go; docs/readings.md).
func (s *Server) erasureRoutes() {
	s.handle("GET /v1/orgs/{id}/policy", s.getPolicy)
	s.handle("GET /v1/erasures", s.listErasures)
	s.handle("GET /v1/erasures/{seq}", s.getErasure)
	s.handle("GET /v1/governance", s.getGovernance)
}

// getGovernance answers GET /v1/governance: who may create organisations
// and each organisation's share of the mempool, blocks and height
// triggers (record/governance.go). With ?prove=true, its proof (absent on
// a network whose genesis set none: open and unlimited).
func (s *Server) getGovernance(r *http.Request) (any, error) {
	return s.record(r, []byte(record.KeyGovernance), func(st *ledger.State) (any, error) { return st.Governance() })
}

// getPolicy answers GET /v1/orgs/{id}/policy: the organisation's privacy
// policy (public marks, retention, current data key version); an
// organisation that never set one has the zero policy (height 0). With
// ?prove=true, its proof (absent when never set).
func (s *Server) getPolicy(r *http.Request) (any, error) {
	org := r.PathValue("id")
	return s.record(r, record.PolicyKey(org), func(st *ledger.State) (any, error) {
		if _, err := st.Org(org); err != nil {
			return nil, err
		}
		return st.Policy(org)
	})
}

// listErasures answers GET /v1/erasures[?org=ORG][&device=ID][&after=SEQ][&limit=N]:
// the erasures recorded on the ledger, in order, optionally of one
// organisation or device; next is the cursor (after=) of the next page.
func (s *Server) listErasures(r *http.Request) (any, error) {
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
	q := r.URL.Query()
	org, device := q.Get("org"), q.Get("device")
	out := []record.Erasure{}
	for len(out) < limit {
		es, err := st.Erasures(after, limit)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if (org == "" || e.Org == org) && (device == "" || e.Device == device) && len(out) < limit {
				out = append(out, e)
			}
			after = e.Seq
		}
		if len(es) < limit {
			break
		}
	}
	return pageOf(st.Height, out, limit, func(e record.Erasure) string { return seqCursor(e.Seq) }), nil
}

// getErasure answers GET /v1/erasures/{seq}: one erasure record, with
// ?prove=true its proof.
func (s *Server) getErasure(r *http.Request) (any, error) {
	raw := r.PathValue("seq")
	seq, err := strconv.ParseUint(raw, 10, 64)
	if err != nil || seq == 0 {
		return nil, notFound("no erasure " + raw + ": seq is a number ≥ 1 (GET /v1/erasures lists them)")
	}
	return s.record(r, record.ErasureKey(seq), func(st *ledger.State) (any, error) { return st.Erasure(seq) })
}
