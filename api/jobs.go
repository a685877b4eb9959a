package api

import (
	"net/http"
	"strconv"

	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// jobRoutes serves jobs (docs/management.md, "Commands and jobs"). A job,
// its counts and its devices' outcomes (with their short reasons) are
// ledger data, public by construction like every record (any full node
// can read them), so these routes check no caller — as for desired
// configurations.
func (s *Server) jobRoutes() {
	s.handle("GET /v1/jobs", s.listJobs)
	s.handle("GET /v1/jobs/{org}/{id}", s.getJob)
}

// listJobs answers GET /v1/jobs?org=ORG&after=ID&limit=N: an
// organisation's jobs, oldest first.
func (s *Server) listJobs(r *http.Request) (any, error) {
	org := r.URL.Query().Get("org")
	if org == "" {
		return nil, badRequest("name the organisation: GET /v1/jobs?org=ORG")
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
	js, err := st.Jobs(org, after, limit)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, js, limit, func(j record.JobRecord) string { return seqCursor(j.ID) }), nil
}

// getJob answers GET /v1/jobs/{org}/{id}: the job's progress (per wave:
// succeeded, failed, rejected, pending, timed out, skipped; the reasons
// of failures), with ?prove=true a proof of the job record.
func (s *Server) getJob(r *http.Request) (any, error) {
	org := r.PathValue("org")
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		// No job has such an id: a missing record, not a bad request.
		return nil, notFound("no job " + org + "/" + r.PathValue("id") + ": a job id is a number ≥ 1 (GET /v1/jobs?org=" + org + " lists them)")
	}
	return s.record(r, record.JobKey(org, id), func(st *ledger.State) (any, error) {
		return st.JobProgress(org, id)
	})
}
