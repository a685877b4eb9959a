package api

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"

	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// validatorRoutes serves what the ledger knows of validators beyond the
// current set: each one's record and history, and the evidence of
// misbehaviour committed against them (docs/security.md, "Byzantine
// validators").
func (s *Server) validatorRoutes() {
	s.handle("GET /v1/validators/{id}", s.getValidator)
	s.handle("GET /v1/validators/{id}/history", s.getValidatorHistory)
	s.handle("GET /v1/evidence", s.listEvidence)
	s.handle("GET /v1/evidence/{seq}", s.getEvidence)
}

// ParseValidatorID turns a validator's address (40 hex digits, as CometBFT
// prints it) or consensus key (64 hex digits, or base64 as the ledger and
// `thingnet node init` print it) into its address.
func ParseValidatorID(id string) ([]byte, error) {
	if b, err := hex.DecodeString(id); err == nil {
		switch len(b) {
		case 20:
			return b, nil
		case 32:
			return record.ValidatorAddress(b), nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(id); err == nil && len(b) == 32 {
			return record.ValidatorAddress(b), nil
		}
	}
	return nil, fmt.Errorf("%q is neither a validator address (40 hex digits) nor an Ed25519 consensus key (64 hex digits or base64)", id)
}

// validatorAddr reads the {id} of a validator route. An id that cannot name
// a validator names no record: a 404 that says what an id looks like.
func validatorAddr(r *http.Request) ([]byte, error) {
	addr, err := ParseValidatorID(r.PathValue("id"))
	if err != nil {
		return nil, notFound("no such validator: " + err.Error())
	}
	return addr, nil
}

// getValidator answers GET /v1/validators/{id}: the validator's record (in
// or out of the set), with ?prove=true its proof.
func (s *Server) getValidator(r *http.Request) (any, error) {
	addr, err := validatorAddr(r)
	if err != nil {
		return nil, err
	}
	return s.record(r, record.ValidatorInfoKey(addr), func(st *ledger.State) (any, error) { return st.ValidatorInfo(addr) })
}

// getValidatorHistory answers GET /v1/validators/{id}/history?after=SEQ:
// the validator's entries (genesis, validator.update, evidence) in order.
func (s *Server) getValidatorHistory(r *http.Request) (any, error) {
	addr, err := validatorAddr(r)
	if err != nil {
		return nil, err
	}
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	if _, err := st.ValidatorInfo(addr); err != nil {
		return nil, err
	}
	limit, err := limitParam(r)
	if err != nil {
		return nil, err
	}
	from := uint64(1)
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == ^uint64(0) {
			return nil, badRequest("after must be a history sequence number")
		}
		from = n + 1
	}
	evs, err := st.ValidatorHistory(addr, from, limit)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, evs, limit, func(e record.ValidatorEvent) string { return seqCursor(e.Seq) }), nil
}

// listEvidence answers GET /v1/evidence?after=SEQ&limit=N: the evidence
// committed so far, in seq order.
func (s *Server) listEvidence(r *http.Request) (any, error) {
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
	evs, err := st.EvidenceList(after, limit)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, evs, limit, func(e record.Evidence) string { return seqCursor(e.Seq) }), nil
}

// getEvidence answers GET /v1/evidence/{seq}: one evidence record, with
// ?prove=true its proof.
func (s *Server) getEvidence(r *http.Request) (any, error) {
	raw := r.PathValue("seq")
	seq, err := strconv.ParseUint(raw, 10, 64)
	if err != nil || seq == 0 {
		return nil, notFound("no evidence " + raw + ": seq is a number ≥ 1 (GET /v1/evidence lists them)")
	}
	return s.record(r, record.EvidenceKey(seq), func(st *ledger.State) (any, error) { return st.Evidence(seq) })
}
