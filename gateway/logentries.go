package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// logEntries answers GET /v1/log/entries?from=N&limit=M: the log's entries
// [N, N+M) in index order, each with its readings where the caller may
// read them (the read rule, as every read path: allowRead) and withheld
// otherwise, with the log's size and its latest anchored size. It is the
// source of the export connectors (package export): a follower keeps
// "next" as its checkpoint and never skips an entry it was not shown.
func (g *Gateway) logEntries(r *http.Request) (any, error) {
	from, limit, err := parseLogRange(r.URL.Query())
	if err != nil {
		return nil, api.NewError(http.StatusBadRequest, "bad_request", err.Error())
	}
	st, err := g.ledger.View()
	if err != nil {
		return nil, err
	}
	caller, err := api.Caller(r, st, g.ledger.ChainID(), g.clock.Now())
	if err != nil {
		return nil, err
	}
	size := g.data.Size()
	page := &client.LogEntries{Gateway: g.id, From: from, Next: from, Size: size, Entries: []client.LogEntry{}}
	if a, err := st.Anchor(g.id); err == nil {
		page.Anchored, page.AnchoredHeight = a.Size, a.Height
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return nil, err
	}
	if from >= size {
		return page, nil
	}
	end := min(size, from+uint64(limit))
	rd := pageReader{g: g, st: st, caller: caller, allowed: map[string]*record.Device{}, refused: map[string]bool{}}
	for i := from; i < end; i++ {
		e, err := rd.entry(i)
		if err != nil {
			return nil, err
		}
		page.Entries = append(page.Entries, *e)
	}
	page.Next = end
	return page, nil
}

// pageReader reads the entries of one page against one ledger state; the
// read rule is applied (and a grant's quota spent) once per device a page.
type pageReader struct {
	g       *Gateway
	st      *ledger.State
	caller  string
	allowed map[string]*record.Device
	refused map[string]bool
	anchor  *record.Anchor // the last anchor found: it covers [.., Size)
}

func (p *pageReader) entry(i uint64) (*client.LogEntry, error) {
	leaf, err := p.g.data.LeafHash(i)
	if err != nil {
		return nil, fmt.Errorf("log entry %d: %w", i, err)
	}
	e := &client.LogEntry{Index: i, EntryHash: leaf[:]}
	if e.AnchorHeight, err = p.anchorHeight(i); err != nil {
		return nil, err
	}
	// An archived entry's device is in the index: the read rule first, so
	// a refused caller costs no segment fetch.
	if dev, archived, err := p.g.archivedDevice(i); err != nil {
		return nil, err
	} else if archived {
		if d, err := p.device(dev); err != nil || d == nil {
			e.Withheld = withheldFor(p.caller)
			return e, err
		}
	}
	raw, err := p.g.entry(i)
	var ee *datalog.ErasedError
	if errors.As(err, &ee) {
		msg := "the value was erased"
		if t, err := DecodeTombstone(ee.Tombstone); err == nil {
			msg = t.Message()
		}
		e.Withheld = &proof.Unavailable{Code: proof.CodeErased, Message: msg}
		return e, nil
	}
	if err != nil {
		return nil, fmt.Errorf("log entry %d: %w", i, err)
	}
	de, err := reading.DecodeEntry(raw)
	if err != nil {
		return nil, fmt.Errorf("log entry %d: %w", i, err)
	}
	env := de.Envelope
	d, err := p.device(env.Device)
	if err != nil {
		return nil, err
	}
	if d == nil {
		e.Withheld = withheldFor(p.caller)
		return e, nil
	}
	e.Org = d.Org
	for _, r := range env.Readings {
		e.Readings = append(e.Readings, client.NewReadingItem(i, de, r, p.g.late(de.ReceivedAt, r)))
	}
	return e, nil
}

// device is id's record if the caller may read its readings, else nil.
func (p *pageReader) device(id string) (*record.Device, error) {
	if d, ok := p.allowed[id]; ok {
		return d, nil
	}
	if p.refused[id] {
		return nil, nil
	}
	d, err := p.st.Device(id)
	if errors.Is(err, ledger.ErrNotFound) {
		p.refused[id] = true
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ok, err := p.g.allowRead(p.st, p.caller, d)
	if err != nil {
		return nil, err
	}
	if !ok {
		p.refused[id] = true
		return nil, nil
	}
	p.allowed[id] = d
	return d, nil
}

// anchorHeight is the height of the first anchor covering entry i, 0 if
// none does yet.
func (p *pageReader) anchorHeight(i uint64) (int64, error) {
	if p.anchor != nil && i < p.anchor.Size {
		return p.anchor.Height, nil
	}
	a, err := p.st.AnchorCovering(p.g.id, i)
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	p.anchor = a
	return a.Height, nil
}

// parseLogRange parses from (default 0) and limit (default 100, 0 to
// client.MaxLogEntries; 0 answers the sizes only) of GET /v1/log/entries.
func parseLogRange(q url.Values) (from uint64, limit int, err error) {
	limit = 100
	if v := q.Get("from"); v != "" {
		if from, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("from must be a log index (0 or more), not %q", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > client.MaxLogEntries {
			return 0, 0, fmt.Errorf("limit must be 0 to %d, not %q", client.MaxLogEntries, v)
		}
		limit = n
	}
	return from, limit, nil
}
