package api

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

// eventTag is the name of a ledger event attribute: "type.key" (for
// example file.cid, firmware.action), as the ledger emits them.
var eventTag = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$`)

const maxEventFilters = 4

// eventQuery turns ?event=type.key=value (repeated, all must hold) into a
// CometBFT query over the node's transaction index.
func eventQuery(vals []string) (string, error) {
	if len(vals) == 0 {
		return "", badRequest("name at least one ledger event: ?event=TYPE.KEY=VALUE, e.g. event=file.cid=bafy... or event=firmware.action=release")
	}
	if len(vals) > maxEventFilters {
		return "", badRequest(fmt.Sprintf("%d event filters; at most %d", len(vals), maxEventFilters))
	}
	conds := make([]string, 0, len(vals))
	for _, v := range vals {
		tag, val, ok := strings.Cut(v, "=")
		if !ok || !eventTag.MatchString(tag) {
			return "", badRequest(fmt.Sprintf("event filter %q: want TYPE.KEY=VALUE with a lower-case type and key, e.g. file.cid=bafy...", v))
		}
		if val == "" || len(val) > 256 || strings.ContainsAny(val, "'\x00\n\r") {
			return "", badRequest(fmt.Sprintf("event filter %q: the value must be 1 to 256 characters, without quotes or line breaks", v))
		}
		conds = append(conds, tag+"='"+val+"'")
	}
	return strings.Join(conds, " AND "), nil
}

// searchTxs answers GET /v1/txs?event=TYPE.KEY=VALUE[&event=...]&page=N&limit=N:
// the committed transactions whose ledger events
// match every filter, newest first, from the node's transaction index
// (docs/api.md, "Searching transactions").
func (s *Server) searchTxs(r *http.Request) (any, error) {
	q := r.URL.Query()
	query, err := eventQuery(q["event"])
	if err != nil {
		return nil, err
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 100 {
			return nil, badRequest("limit must be 1..100")
		}
	}
	page := 1
	if v := q.Get("page"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 1 {
			return nil, badRequest("page must be a number ≥ 1")
		}
	}
	res, err := s.comet.TxSearch(r.Context(), query, false, &page, &limit, "desc")
	if err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "indexing is disabled"):
			return nil, &apiError{http.StatusServiceUnavailable, "no_index", "this node keeps no transaction index (tx_index.indexer is \"null\")"}
		case strings.Contains(msg, "page should be within"):
			return nil, notFound(fmt.Sprintf("page %d is past the last page of %s", page, query))
		}
		return nil, fmt.Errorf("searching transactions for %s: %w", query, err)
	}
	out := client.TxSearch{Total: res.TotalCount, Page: page, Items: make([]client.TxInfo, 0, len(res.Txs))}
	for _, t := range res.Txs {
		out.Items = append(out.Items, txInfo(t))
	}
	if page*limit < res.TotalCount {
		out.Next = page + 1
	}
	return out, nil
}

// txInfo decodes a committed transaction.
func txInfo(res *ctypes.ResultTx) client.TxInfo {
	info := client.TxInfo{Hash: res.Hash.String(), Height: res.Height, Index: res.Index, Code: res.TxResult.Code,
		Reason: record.Code(res.TxResult.Code).String(), Log: res.TxResult.Log, Events: res.TxResult.Events, Tx: res.Tx}
	if tx, err := record.DecodeTx(res.Tx); err == nil {
		info.Kind, info.Signer, info.Nonce, info.Msg = tx.Kind, tx.Signer, tx.Nonce, tx.Msg
	}
	return info
}
