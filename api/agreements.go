package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/thingnet/thingnet/agreements"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// agreementRoutes serves agreements, credits and device commands.
func (s *Server) agreementRoutes() {
	s.handle("GET /v1/agreements", s.listAgreements)
	s.handle("GET /v1/agreements/{id}", s.getAgreement)
	s.handle("GET /v1/agreements/{id}/history", s.getAgreementHistory)
	s.handle("POST /v1/agreements/dry-run", s.dryRunAgreement)
	s.handle("GET /v1/credits/{account}", s.getCredits)
	s.handle("GET /v1/credits/{account}/transfers", s.getTransfers)
	s.handle("GET /v1/devices/{id}/commands", s.getCommands)
}

// ViewAgreement builds the API view of an agreement; compile (nil:
// ledger.CompileAgreement) gives its program, to name its state variables.
func ViewAgreement(a *record.Agreement, compile func(*record.Agreement) (*agreements.Program, error)) client.AgreementView {
	v := client.AgreementView{Agreement: *a, Source: string(a.Source), State: map[string]any{}}
	if a.State == nil {
		return v
	}
	v.Escrow = a.State.Escrow()
	if len(a.State.Grants) > 0 {
		v.Grants = a.State.Grants
	}
	for i, d := range a.State.Deposits {
		if d > 0 && i < len(a.Parties) {
			if v.Deposits == nil {
				v.Deposits = map[string]any{}
			}
			v.Deposits[a.Parties[i].Name] = d
		}
	}
	if compile == nil {
		compile = ledger.CompileAgreement
	}
	if p, err := compile(a); err == nil {
		v.State = p.StateMap(a.State)
	}
	return v
}

func idParam(r *http.Request) (uint64, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		return 0, badRequest(fmt.Sprintf("agreement id %q must be a number from 1", r.PathValue("id")))
	}
	return id, nil
}

func uintQuery(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest(fmt.Sprintf("%s %q must be a number", name, v))
	}
	return n, nil
}

func (s *Server) listAgreements(r *http.Request) (any, error) {
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
	ags, err := st.Agreements(after, limit)
	if err != nil {
		return nil, err
	}
	items := make([]client.AgreementView, 0, len(ags))
	for i := range ags {
		items = append(items, ViewAgreement(&ags[i], s.app.Program))
	}
	return pageOf(st.Height, items, limit, func(a client.AgreementView) string { return seqCursor(a.ID) }), nil
}

func (s *Server) getAgreement(r *http.Request) (any, error) {
	id, err := idParam(r)
	if err != nil {
		return nil, err
	}
	return s.record(r, record.AgreementKey(id), func(st *ledger.State) (any, error) {
		a, err := st.Agreement(id)
		if err != nil {
			return nil, err
		}
		return ViewAgreement(a, s.app.Program), nil
	})
}

func (s *Server) getAgreementHistory(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	id, err := idParam(r)
	if err != nil {
		return nil, err
	}
	if _, err := st.Agreement(id); err != nil {
		return nil, err
	}
	limit, err := limitParam(r)
	if err != nil {
		return nil, err
	}
	from, err := uintQuery(r, "from")
	if err != nil {
		return nil, err
	}
	evs, err := st.AgreementHistory(id, from, limit)
	if err != nil {
		return nil, err
	}
	// ?from= is inclusive: the next page starts after the last event.
	return pageOf(st.Height, evs, limit, func(e record.AgreementEvent) string { return seqCursor(e.Seq + 1) }), nil
}

func (s *Server) dryRunAgreement(r *http.Request) (any, error) {
	dec := json.NewDecoder(io.LimitReader(r.Body, record.MaxTxBytes*2))
	dec.UseNumber()
	var q client.DryRunRequest
	if err := dec.Decode(&q); err != nil {
		return nil, badRequest("body must be a dry-run request (signer, id, transition, args, reading; or signer, source, parties): " + err.Error())
	}
	if q.Signer == "" {
		return nil, badRequest("signer is required: the account the tx would be signed by")
	}
	m, err := q.Msg()
	if err != nil {
		return nil, badRequest(err.Error())
	}
	return s.app.DryRun(q.Signer, m)
}

func (s *Server) getCredits(r *http.Request) (any, error) {
	acct := r.PathValue("account")
	return s.record(r, record.BalanceKey(acct), func(st *ledger.State) (any, error) {
		b, err := st.Balance(acct)
		if err != nil {
			return nil, err
		}
		return client.Credits{Account: acct, Balance: b}, nil
	})
}

func (s *Server) getTransfers(r *http.Request) (any, error) {
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
	acct := r.PathValue("account")
	if acct == "all" {
		acct = ""
	}
	ts, err := st.Transfers(acct, after, limit)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, ts, limit, func(t record.Transfer) string { return seqCursor(t.Seq) }), nil
}

func (s *Server) getCommands(r *http.Request) (any, error) {
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
	cs, err := st.Commands(r.PathValue("id"), after, limit)
	if err != nil {
		return nil, err
	}
	return pageOf(st.Height, cs, limit, func(c record.Command) string { return seqCursor(c.ID) }), nil
}

// DryRun asks the node behind c what a call or deployment would do.
func DryRun(ctx context.Context, c *client.Client, q *client.DryRunRequest) (*ledger.DryRun, error) {
	var out ledger.DryRun
	return &out, c.Post(ctx, "/v1/agreements/dry-run", q, &out)
}
