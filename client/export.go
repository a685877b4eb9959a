package client

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/thingnet/thingnet/proof"
)

// LogEntries is a page of a gateway's data log in log-index order
// (GET /v1/log/entries?from=N&limit=M): what an exporter follows from a
// checkpoint. Every entry in [From, Next) is answered, readable or not, so
// the follower advances past what it may not read.
type LogEntries struct {
	Gateway string `json:"gateway"`
	From    uint64 `json:"from"`
	// Next is the index after the last entry answered: the follower's next
	// checkpoint. Next == From when the log holds nothing past From yet.
	Next uint64 `json:"next"`
	// Size is the log's size when the page was read.
	Size uint64 `json:"size"`
	// Anchored is the size of the gateway's latest anchor on the ledger
	// (entries below it are anchored); AnchoredHeight its height.
	Anchored       uint64     `json:"anchored"`
	AnchoredHeight int64      `json:"anchored_height,omitempty"`
	Entries        []LogEntry `json:"entries"`
}

// LogEntry is one entry of a LogEntries page: its readings, with the
// organisation of their device, or why they are withheld (the public part
// only: index, entry hash, anchor).
type LogEntry struct {
	Index     uint64 `json:"index"`
	EntryHash []byte `json:"entry_hash"`
	// AnchorHeight is the height of the first anchor covering the entry;
	// 0 while it is not anchored.
	AnchorHeight int64 `json:"anchor_height,omitempty"`
	// Org is the organisation of the readings' device (readable entries).
	Org      string             `json:"org,omitempty"`
	Readings []ReadingItem      `json:"readings,omitempty"`
	Withheld *proof.Unavailable `json:"withheld,omitempty"`
}

// MaxLogEntries is the largest limit GET /v1/log/entries takes.
const MaxLogEntries = 1000

// LogEntries reads up to limit entries of the node's gateway log from
// index from (limit 0: only the sizes). Values are answered for the
// entries c's identity may read; the others come withheld.
func (c *Client) LogEntries(ctx context.Context, from uint64, limit int) (*LogEntries, error) {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "limit": {strconv.Itoa(limit)}}
	var p LogEntries
	if err := c.Get(ctx, "/v1/log/entries?"+q.Encode(), &p); err != nil {
		return nil, fmt.Errorf("log entries from %d at %s: %w", from, c.BaseURL, err)
	}
	if p.From != from || p.Next < from || p.Next-from != uint64(len(p.Entries)) {
		return nil, fmt.Errorf("log entries from %d at %s: the answer covers [%d, %d) with %d entries", from, c.BaseURL, p.From, p.Next, len(p.Entries))
	}
	for k, e := range p.Entries {
		if e.Index != from+uint64(k) {
			return nil, fmt.Errorf("log entries from %d at %s: entry %d answered as %d", from, c.BaseURL, from+uint64(k), e.Index)
		}
	}
	return &p, nil
}
