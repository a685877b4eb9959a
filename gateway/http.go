package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/reading"
)

// Routes are the gateway's HTTP endpoints, mounted on the node's API:
// POST /v1/readings (a signed envelope; 202 once durably stored) and
// GET /v1/readings/{index} (the envelope with its proof).
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
			idx, err := g.IngestIndex(r.Context(), "", raw, src)
			switch {
			case err == nil:
				return api.WithStatus(http.StatusAccepted, map[string]any{"gateway": g.id, "index": idx}), nil
			case errors.Is(err, ErrOverloaded):
				return nil, api.NewError(http.StatusServiceUnavailable, "overloaded", err.Error())
			case errors.Is(err, ErrRejected):
				return nil, api.NewError(http.StatusBadRequest, "rejected", err.Error())
			default:
				return nil, err
			}
		},
		"GET /v1/readings/{index}": func(r *http.Request) (any, error) {
			i, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
			if err != nil {
				return nil, api.NewError(http.StatusBadRequest, "bad_request", "index must be a number")
			}
			p, err := g.Prove(app, i)
			switch {
			case err == nil:
				return p, nil
			case errors.Is(err, ErrNotAnchored):
				return nil, api.NewError(http.StatusConflict, "not_anchored", err.Error())
			default:
				return nil, api.NewError(http.StatusNotFound, "not_found", err.Error())
			}
		},
	}
}
