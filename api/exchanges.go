package api

import (
	"encoding/hex"
	"net/http"

	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// getExchange answers GET /v1/exchanges/{root}: an anchored message
// exchange (root in hex), with ?prove=true its proof.
func (s *Server) getExchange(r *http.Request) (any, error) {
	root, err := hex.DecodeString(r.PathValue("root"))
	if err != nil || len(root) != 32 {
		return nil, badRequest("root must be 64 hex digits (the exchange's RFC 6962 root)")
	}
	return s.record(r, record.ExchangeKey(root), func(st *ledger.State) (any, error) { return st.Exchange(root) })
}
