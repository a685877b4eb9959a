package api

import (
	"net/http"

	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// fileRoutes serves the ledger's file manifests and pin records. The
// content itself is served by the node's file service (files.MountAPI:
// /v1/content).
func (s *Server) fileRoutes() {
	s.handle("GET /v1/files/{org}", s.listFiles)
	s.handle("GET /v1/files/{org}/{name}", s.getFile)
	s.handle("GET /v1/pins/{cid}", s.getPins)
}

// listFiles answers GET /v1/files/{org}?after=NAME&limit=N.
func (s *Server) listFiles(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	limit, err := limitParam(r)
	if err != nil {
		return nil, err
	}
	fs, err := st.Files(r.PathValue("org"), r.URL.Query().Get("after"), limit)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, fs, limit, func(f record.FileManifest) string { return f.Name }), nil
}

// getFile answers GET /v1/files/{org}/{name}: a manifest, with ?prove=true
// its proof against the app hash.
func (s *Server) getFile(r *http.Request) (any, error) {
	org, name := r.PathValue("org"), r.PathValue("name")
	return s.record(r, record.FileKey(org, name), func(st *ledger.State) (any, error) { return st.File(org, name) })
}

// getPins answers GET /v1/pins/{cid}: the nodes that recorded a pin of it.
func (s *Server) getPins(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	ps, err := st.FilePins(r.PathValue("cid"))
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, ps, 0, nil), nil // all of them: no paging
}
