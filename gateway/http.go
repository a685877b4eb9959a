package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
)

// Mount adds the gateway's HTTP endpoints to the node's API:
// POST /v1/readings (a signed envelope; 202 once durably stored),
// GET /v1/readings?device= (by time), GET /v1/readings/{index} (with its
// proof), GET /v1/readings/stream?device= (server-sent events) and GET
// /v1/readings/query (ranges and roll-ups, query.go).
func (g *Gateway) Mount(s *api.Server, app *ledger.App) {
	s.Mount(g.Routes(app))
	s.MountHandler("GET /v1/readings/stream", http.HandlerFunc(g.stream))
	s.MountHandler("GET /v1/readings/query", http.HandlerFunc(g.queryReadings))
}

// Routes are the gateway's JSON endpoints (see Mount).
func (g *Gateway) Routes(app *ledger.App) map[string]api.HandlerFunc {
	return map[string]api.HandlerFunc{
		"POST /v1/readings": func(r *http.Request) (any, error) {
			raw, err := io.ReadAll(io.LimitReader(r.Body, reading.MaxEnvelopeSize+1))
			if err != nil {
				return nil, api.NewError(http.StatusBadRequest, "bad_request", err.Error())
			}
			if len(raw) > reading.MaxEnvelopeSize {
				return nil, api.NewError(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a reading envelope is at most %d bytes", reading.MaxEnvelopeSize))
			}
			src, _, _ := net.SplitHostPort(r.RemoteAddr)
			if d := g.sources.AllowMessage("addr:"+src, len(raw)); !d.Allowed {
				g.stats.limited.Add(1)
				return nil, api.NewError(http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("too many readings from %s (%s); retry in %v", src, d.Reason, d.RetryAfter.Round(time.Millisecond)))
			}
			idx, err := g.IngestIndex(r.Context(), "", raw, src)
			switch {
			case err == nil:
				return api.WithStatus(http.StatusAccepted, map[string]any{"gateway": g.id, "index": idx}), nil
			case errors.Is(err, ErrDuplicate):
				// An exact resend of what is stored (the device lost the
				// answer): acknowledged, as MQTT and CoAP acknowledge it.
				return map[string]any{"gateway": g.id, "duplicate": true}, nil
			case errors.Is(err, ErrFutureReading):
				return nil, api.NewError(http.StatusUnprocessableEntity, "future_reading", err.Error())
			case errors.Is(err, ErrOverloaded):
				return nil, api.NewError(http.StatusServiceUnavailable, "overloaded", err.Error())
			case errors.Is(err, ErrRejected):
				return nil, api.NewError(http.StatusBadRequest, "rejected", err.Error())
			default:
				return nil, err
			}
		},
		"GET /v1/readings":         g.listReadings,
		"GET /v1/readings/{index}": func(r *http.Request) (any, error) { return g.getReading(app, r) },
		"GET /v1/log/entries":      g.logEntries, // logentries.go: what exporters follow
		"GET /v1/archive":          g.archiveStatus,
	}
}

// getReading answers GET /v1/readings/{index}: the stored reading with its
// proof, whether or not the proof can be made (proof_error says why not):
// data never disappears behind its proof. To a caller the read rule
// refuses, the entry's public part only: its hash, inclusion and anchor
// proofs, with withheld saying why (integrity is public, values are not).
func (g *Gateway) getReading(app *ledger.App, r *http.Request) (any, error) {
	i, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		return nil, api.NewError(http.StatusBadRequest, "bad_request", "index must be a number")
	}
	st, caller, err := g.caller(r)
	if err != nil {
		return nil, err
	}
	// An archived entry's device is in the index: the read rule is applied
	// before its segment is fetched, and a refused caller costs no fetch.
	dev, archived, err := g.archivedDevice(i)
	if err != nil {
		return nil, err
	}
	if archived {
		ok, err := g.mayReadDevice(st, caller, dev)
		if err != nil {
			return nil, err
		}
		if !ok {
			return g.publicReading(app, i, 0, 0, withheldFor(caller))
		}
	}
	p, err := g.Reading(app, i)
	if errors.Is(err, ErrNoEntry) {
		return nil, api.NewError(http.StatusNotFound, "not_found", err.Error())
	}
	if err != nil {
		return nil, err
	}
	if p.Withheld != nil || archived {
		return p, nil // erased (erase.go): no value to withhold, to anyone; archived: allowed above
	}
	env, err := reading.Decode(p.Envelope)
	if err != nil {
		return nil, fmt.Errorf("log entry %d: %w", i, err)
	}
	ok, err := g.mayReadDevice(st, caller, env.Device)
	if err != nil {
		return nil, err
	}
	if !ok {
		return withhold(p, caller), nil
	}
	return p, nil
}

// mayReadDevice applies the read rule (allowRead) to caller and device's
// readings; false for a device the ledger does not know.
func (g *Gateway) mayReadDevice(st *ledger.State, caller, device string) (bool, error) {
	d, err := st.Device(device)
	if err != nil {
		return false, nil
	}
	return g.allowRead(st, caller, d)
}

// withhold is p without what only a reader may see: the envelope and the
// signer's proofs.
func withhold(p *proof.Reading, caller string) *proof.Reading {
	return &proof.Reading{Gateway: p.Gateway, Index: p.Index, EntryHash: proof.LeafHash(p.Entry()), AuthHeight: p.AuthHeight, ReceivedAt: p.ReceivedAt,
		Withheld: withheldFor(caller), ProofError: p.ProofError,
		Anchor: p.Anchor, Inclusion: p.Inclusion, Height: p.Height, AnchorProof: p.AnchorProof}
}

// withheldFor says why a reading's value is withheld from caller.
func withheldFor(caller string) *proof.Unavailable {
	why := "the reading is not public; authenticate as the device, an admin of its organisation or a holder of a read grant (Authorization: Bearer <token>)"
	if caller != "" {
		why = caller + " may not read this reading (not the device, not an admin of its organisation, no read grant in force)"
	}
	return &proof.Unavailable{Code: proof.CodeWithheld, Message: why}
}

// listReadings answers GET /v1/readings?device=ID[&from=T][&to=T][&limit=N]:
// a device's readings timed in [from, to), oldest first; times are RFC 3339
// or Unix milliseconds.
func (g *Gateway) listReadings(r *http.Request) (any, error) {
	q := r.URL.Query()
	device := q.Get("device")
	if _, err := g.mayRead(r, device); err != nil {
		return nil, err
	}
	from, err := parseTime(q.Get("from"), time.UnixMilli(0))
	if err != nil {
		return nil, api.NewError(http.StatusBadRequest, "bad_request", "from: "+err.Error())
	}
	to, err := parseTime(q.Get("to"), time.UnixMilli(1<<53))
	if err != nil {
		return nil, api.NewError(http.StatusBadRequest, "bad_request", "to: "+err.Error())
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return nil, api.NewError(http.StatusBadRequest, "bad_request", "limit must be 1..1000")
		}
	}
	idx, err := g.index.query(device, from, to, limit)
	if err != nil {
		return nil, err
	}
	items := []client.ReadingItem{}
	for _, i := range idx {
		raw, err := g.entry(i)
		if errors.Is(err, datalog.ErrErased) {
			continue // erased while the list was read (erase.go)
		}
		if err != nil {
			return nil, err
		}
		e, err := reading.DecodeEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("log entry %d: %w", i, err)
		}
		for _, rd := range e.Envelope.Readings {
			if rd.Time.Before(from) || !rd.Time.Before(to) || len(items) >= limit {
				continue
			}
			items = append(items, client.NewReadingItem(i, e, rd, g.late(e.ReceivedAt, rd)))
		}
	}
	return map[string]any{"gateway": g.id, "items": items}, nil
}

func parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("%q is neither RFC 3339 nor Unix milliseconds", s)
	}
	return t, nil
}
