package api

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	cmtjson "github.com/cometbft/cometbft/libs/json"
	rpcclient "github.com/cometbft/cometbft/rpc/client"
	"github.com/cometbft/cometbft/types"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

func mustCmtJSON(v any) []byte {
	b, err := cmtjson.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("api: encoding %T: %v", v, err)) // CometBFT types always encode
	}
	return b
}

func allValidators(ctx context.Context, c rpcclient.Client, height int64) ([]*types.Validator, error) {
	var out []*types.Validator
	perPage := 100
	for page := 1; ; page++ {
		res, err := c.Validators(ctx, &height, &page, &perPage)
		if err != nil {
			return nil, fmt.Errorf("validators at height %d: %w", height, err)
		}
		out = append(out, res.Validators...)
		if len(out) >= res.Total || len(res.Validators) == 0 {
			return out, nil
		}
	}
}

// view picks the state to read: the latest committed one, or with
// ?height=H the state after block H. (A proof of height H checks against
// the header of H+1, which clients wait for.)
func (s *Server) view(r *http.Request) (*ledger.State, bool, error) {
	q := r.URL.Query()
	prove := q.Get("prove") == "true" || q.Get("prove") == "1"
	var h int64
	if v := q.Get("height"); v != "" {
		var err error
		if h, err = strconv.ParseInt(v, 10, 64); err != nil || h <= 0 {
			return nil, false, badRequest(fmt.Sprintf("height %q must be a positive number", v))
		}
	}
	st, err := s.app.View(h)
	if errors.Is(err, ledger.ErrNoState) {
		return nil, false, err
	}
	if err != nil {
		return nil, false, badRequest(err.Error())
	}
	return st, prove, nil
}

// record answers a single-record read: the decoded record, and a proof of
// its key (inclusion, or absence with a 404) when asked.
func (s *Server) record(r *http.Request, key []byte, load func(*ledger.State) (any, error)) (any, error) {
	st, prove, err := s.view(r)
	if err != nil {
		return nil, err
	}
	rec, err := load(st)
	if err != nil {
		if prove && isNotFound(err) {
			p, perr := s.app.Prove(key, st.Height)
			if perr != nil {
				return nil, perr
			}
			return &accepted{http.StatusNotFound, client.Record{Height: st.Height, Proof: p}}, nil
		}
		return nil, err
	}
	out := client.Record{Height: st.Height, Record: rec}
	if prove {
		if out.Proof, err = s.app.Prove(key, st.Height); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func isNotFound(err error) bool { return errors.Is(err, ledger.ErrNotFound) }

func (s *Server) getOrg(r *http.Request) (any, error) {
	id := r.PathValue("id")
	return s.record(r, record.OrgKey(id), func(st *ledger.State) (any, error) { return st.Org(id) })
}

func (s *Server) getDevice(r *http.Request) (any, error) {
	id := r.PathValue("id")
	return s.record(r, record.DeviceKey(id), func(st *ledger.State) (any, error) { return st.Device(id) })
}

func (s *Server) getAnchor(r *http.Request) (any, error) {
	gw := r.PathValue("gateway")
	return s.record(r, record.AnchorKey(gw), func(st *ledger.State) (any, error) { return st.Anchor(gw) })
}

func (s *Server) getGrant(r *http.Request) (any, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, badRequest("grant id must be a number")
	}
	return s.record(r, record.GrantKey(id), func(st *ledger.State) (any, error) { return st.Grant(id) })
}

func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > 1000 {
		return 0, badRequest("limit must be 1..1000")
	}
	return n, nil
}

// pageOf is the Page of items, a list read at height with limit: Items is
// never null, and Next, the cursor of the last item, is set when the page
// is full (there may be more).
func pageOf[T any](height int64, items []T, limit int, cursor func(T) string) client.Page {
	if items == nil {
		items = []T{}
	}
	p := client.Page{Height: height, Items: items}
	if limit > 0 && len(items) == limit {
		p.Next = cursor(items[len(items)-1])
	}
	return p
}

// seqCursor formats a sequence number or id as a cursor.
func seqCursor(n uint64) string { return strconv.FormatUint(n, 10) }

func (s *Server) listOrgs(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	limit, err := limitParam(r)
	if err != nil {
		return nil, err
	}
	orgs, err := st.Orgs(r.URL.Query().Get("after"), limit)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, orgs, limit, func(o record.Org) string { return o.ID }), nil
}

func (s *Server) listDevices(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	limit, err := limitParam(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	devs, err := st.Devices(q.Get("org"), q.Get("after"), limit)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, devs, limit, func(d record.Device) string { return d.ID }), nil
}

func (s *Server) getHistory(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if _, err := st.Device(id); err != nil {
		return nil, err
	}
	limit, err := limitParam(r)
	if err != nil {
		return nil, err
	}
	from := uint64(1)
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, badRequest("after must be a history sequence number")
		}
		from = n + 1
	}
	evs, err := st.History(id, from, limit)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, evs, limit, func(e record.Event) string { return seqCursor(e.Seq) }), nil
}

func (s *Server) listGrants(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	limit, err := limitParam(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	f := ledger.GrantFilter{Subject: q.Get("subject"), Action: q.Get("action"), Resource: q.Get("resource"), Limit: limit}
	if v := q.Get("after"); v != "" {
		if f.After, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, badRequest("after must be a grant id")
		}
	}
	gs, err := st.Grants(f)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, gs, limit, func(g record.Grant) string { return seqCursor(g.ID) }), nil
}

func (s *Server) getNonce(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	n, err := st.Nonce(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return client.Nonce{Height: st.Height, Nonce: n}, nil
}

func (s *Server) getValidators(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	vals, err := st.Validators()
	if err != nil {
		return nil, err
	}
	return client.Page{Height: st.Height, Items: vals}, nil
}

// getProof proves any state key: ?key=<hex>[&height=H]. With the key
// given 2 to client.MaxProofKeys times, it proves each in the same state
// and answers a client.Proofs: a device learns what it needs at a wake in
// one round trip.
func (s *Server) getProof(r *http.Request) (any, error) {
	hexKeys := r.URL.Query()["key"]
	switch {
	case len(hexKeys) == 0:
		return nil, badRequest("key must be a non-empty hex string")
	case len(hexKeys) > client.MaxProofKeys:
		return nil, badRequest(fmt.Sprintf("%d keys: at most %d a request", len(hexKeys), client.MaxProofKeys))
	}
	keys := make([][]byte, 0, len(hexKeys))
	for i, h := range hexKeys {
		key, err := hex.DecodeString(h)
		if err != nil || len(key) == 0 {
			return nil, badRequest(fmt.Sprintf("key %d must be a non-empty hex string", i+1))
		}
		keys = append(keys, key)
	}
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	if len(keys) == 1 {
		return s.app.Prove(keys[0], st.Height)
	}
	out := client.Proofs{Height: st.Height, Proofs: make([]*record.Proof, len(keys))}
	for i, key := range keys {
		if out.Proofs[i], err = s.app.Prove(key, st.Height); err != nil {
			return nil, err
		}
	}
	return out, nil
}
