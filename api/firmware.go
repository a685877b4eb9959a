package api

import (
	"net/http"
	"strconv"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// firmwareRoutes serves the ledger's firmware releases, approvals and
// rollouts (docs/files.md, "Firmware").
func (s *Server) firmwareRoutes() {
	s.handle("GET /v1/firmware/{vendor}/{class}", s.listFirmware)
	s.handle("GET /v1/firmware/{vendor}/{class}/{seq}", s.getFirmware)
	s.handle("GET /v1/firmware-approvals/{org}/{class}", s.listFirmwareApprovals)
	s.handle("GET /v1/rollouts/{org}/{class}", s.getRollout)
}

// listFirmware answers GET /v1/firmware/{vendor}/{class}?after=SEQ&limit=N:
// a vendor's releases for a class, in seq order.
func (s *Server) listFirmware(r *http.Request) (any, error) {
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
	rs, err := st.FirmwareReleases(r.PathValue("vendor"), r.PathValue("class"), after, limit)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, rs, limit, func(r record.FirmwareReleaseRecord) string { return seqCursor(r.Manifest.Seq) }), nil
}

// getFirmware answers GET /v1/firmware/{vendor}/{class}/{seq}: one release
// with its signed manifest, with ?prove=true its proof.
func (s *Server) getFirmware(r *http.Request) (any, error) {
	vendor, class := r.PathValue("vendor"), r.PathValue("class")
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		// No release has such a seq: a missing record, not a bad request.
		return nil, notFound("no release " + vendor + "/" + class + " #" + r.PathValue("seq") + ": seq is a number ≥ 1 (GET /v1/firmware/" + vendor + "/" + class + " lists them)")
	}
	return s.record(r, record.FirmwareKey(vendor, class, seq), func(st *ledger.State) (any, error) {
		return st.FirmwareRelease(vendor, class, seq)
	})
}

// listFirmwareApprovals answers GET /v1/firmware-approvals/{org}/{class}:
// the releases an organisation approved for its devices of a class.
func (s *Server) listFirmwareApprovals(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	as, err := st.FirmwareApprovals(r.PathValue("org"), r.PathValue("class"))
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, as, 0, nil), nil // all of them: no paging
}

// getRollout answers GET /v1/rollouts/{org}/{class}: the rollout, its
// counts and its open wave, with ?prove=true a proof of the record.
func (s *Server) getRollout(r *http.Request) (any, error) {
	org, class := r.PathValue("org"), r.PathValue("class")
	return s.record(r, record.FirmwareRolloutKey(org, class), func(st *ledger.State) (any, error) {
		ro, err := st.FirmwareRolloutFor(org, class)
		if err != nil {
			return nil, err
		}
		w := ro.Wave(st.Height)
		off := min(w*uint64(ro.Percent), 100)
		if ro.Status != record.RolloutActive {
			off = 0
		}
		return client.Rollout{FirmwareRolloutRecord: ro, Wave: w, Offered: off}, nil
	})
}
