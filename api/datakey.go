package api

import (
	"net/http"
	"strconv"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// getDataKey answers GET /v1/orgs/{id}/datakey[?version=V]: a version of
// the organisation's data key (the current one without ?version), the
// HPKE public key its devices seal confidential readings to. With
// ?prove=true: the proof of the key's record (ok/<org>/<version>) and,
// for the current version, of the policy (op/<org>) that names it
// current, both of the same state, so a light client trusts both.
func (s *Server) getDataKey(r *http.Request) (any, error) {
	org := r.PathValue("id")
	var version uint64
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return nil, badRequest("version " + strconv.Quote(v) + " must be a number ≥ 1")
		}
		version = n
	}
	st, prove, err := s.view(r)
	if err != nil {
		return nil, err
	}
	out := client.DataKeyRecord{Height: st.Height}
	v := version
	if v == 0 {
		p, err := st.Policy(org)
		if err != nil {
			return nil, err
		}
		if prove {
			if out.PolicyProof, err = s.app.Prove(record.PolicyKey(org), st.Height); err != nil {
				return nil, err
			}
		}
		if p.DataKey == 0 {
			if prove {
				return &accepted{http.StatusNotFound, out}, nil
			}
			return nil, notFound("organisation " + strconv.Quote(org) + " has published no data key (thingnet org datakey new)")
		}
		v = p.DataKey
	}
	k, err := st.DataKey(org, v)
	if err != nil && !(prove && isNotFound(err)) {
		return nil, err
	}
	if prove {
		if out.Proof, err = s.app.Prove(record.DataKeyKey(org, v), st.Height); err != nil {
			return nil, err
		}
	}
	if k == nil {
		return &accepted{http.StatusNotFound, out}, nil
	}
	out.Record = k
	return out, nil
}

// getDataKeyShare answers GET /v1/orgs/{id}/datakey/shares/{grantee}
// ?version=V: the grantee's share of a version of the organisation's data
// key (wrapped to the grantee's ledger key: only the grantee opens it),
// with ?prove=true its proof.
func (s *Server) getDataKeyShare(r *http.Request) (any, error) {
	org, grantee := r.PathValue("id"), r.PathValue("grantee")
	var v uint64
	if q := r.URL.Query().Get("version"); q != "" {
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil || n == 0 {
			return nil, badRequest("version " + strconv.Quote(q) + " must be a number ≥ 1")
		}
		v = n
	} else {
		// The current version, as GET /v1/orgs/{id}/datakey answers it.
		st, err := s.app.View(0)
		if err != nil {
			return nil, err
		}
		k, err := st.DataKey(org, 0)
		if err != nil {
			return nil, err
		}
		v = k.Version
	}
	return s.record(r, record.DataKeyShareKey(org, v, grantee), func(st *ledger.State) (any, error) {
		return st.DataKeyShare(org, v, grantee)
	})
}
