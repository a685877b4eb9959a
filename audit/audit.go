// Package audit checks a stopped node's stores offline and lists exactly
// what was altered: the gateway's reading log (gateway.CheckLog; entries
// erased by a ledger erasure or a retention period are listed as erased,
// not altered, when the ledger backs their tombstones), the
// CometBFT block store (chain.CheckBlocks) and the ledger's anchor records,
// each tied to the headers the validators signed. It opens the stores
// read-only through their own packages; `thingnet verify store` prints
// its Report.
package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// Alteration is one thing found altered: which store, which item (a log
// entry index, a block height) and what.
type Alteration struct {
	Store  string `json:"store"` // "readings", "blocks" or "ledger"
	Item   string `json:"item"`  // "entry 7", "height 12", "anchor 3"
	What   string `json:"what"`  // payload/signature, missing, extra, app_hash, tx 0, commit_signature 2, ...
	Detail string `json:"detail"`
}

// Report is the result of a store audit.
type Report struct {
	Home        string             `json:"home"`
	Clean       bool               `json:"clean"`
	Blocks      *chain.BlockReport `json:"blocks,omitempty"`
	Readings    *gateway.LogReport `json:"readings,omitempty"`
	Compared    string             `json:"compared_with,omitempty"` // the node whose header the last block was compared with
	Alterations []Alteration       `json:"alterations"`
	Skipped     []string           `json:"skipped,omitempty"`
}

// Config says which node home to audit.
type Config struct {
	// Home is the node's home directory (its stores under data/).
	Home string
	// Gateway is the device id of the gateway whose reading log the home
	// holds; when empty and the home has a log, GatewayID is asked.
	Gateway string
	// GatewayID names the gateway when Gateway is empty (typically from
	// the home's config); nil: a home with a reading log needs Gateway.
	GatewayID func() (string, error)
	// Compare is the API URL of another node of the network: the last
	// block's hash must be that node's (empty: no comparison).
	Compare string
	// Segments, if set, fetches the segments of the log's archived
	// ranges (e.g. a node's GET /v1/content/{cid}: files.Client.Fetch),
	// which are then checked; nil: archived ranges are listed unchecked.
	Segments gateway.SegmentFetch
	// GatewayKey opens the segments (they are sealed to it); nil: only
	// their digests are checked.
	GatewayKey *identity.Key
}

// Store audits the stores of a stopped node. An error means the audit
// could not run; what it found altered is in the Report.
func Store(ctx context.Context, c Config) (*Report, error) {
	home := c.Home
	rep := &Report{Home: home, Alterations: []Alteration{}}
	data := filepath.Join(home, "data")
	if _, err := os.Stat(filepath.Join(data, "blockstore.db")); err != nil {
		return nil, fmt.Errorf("%s holds no block store (data/blockstore.db): is it a node's home?", home)
	}
	app, err := ledger.NewApp(ledger.Config{Dir: filepath.Join(data, "ledger")})
	if err != nil {
		return nil, fmt.Errorf("opening the ledger state (is the node stopped?): %w", err)
	}
	defer app.Close()
	appHash := func(h int64) ([]byte, error) {
		p, err := app.Prove([]byte("thingnet/verify-store"), h)
		if err != nil {
			return nil, err
		}
		return p.Root, nil
	}
	br, err := chain.CheckBlocks(chain.BlockCheckConfig{DataDir: data, AppHash: appHash})
	if err != nil {
		return nil, err
	}
	rep.Blocks = br
	for _, f := range br.Findings {
		what := f.Field
		if f.Field == "tx" || f.Field == "commit_signature" {
			what = fmt.Sprintf("%s %d", f.Field, f.Index)
		}
		rep.Alterations = append(rep.Alterations, Alteration{Store: "blocks", Item: fmt.Sprintf("height %d", f.Height), What: what, Detail: f.Detail})
	}
	if c.Compare != "" {
		rep.Compared = c.Compare
		h, err := client.New(c.Compare).Header(ctx, br.Height)
		if err != nil {
			return nil, fmt.Errorf("--compare %s: header %d: %w", c.Compare, br.Height, err)
		}
		if theirs := h.SignedHeader.Hash(); !bytes.Equal(theirs, br.LastBlockHash) {
			rep.Alterations = append(rep.Alterations, Alteration{Store: "blocks", Item: fmt.Sprintf("height %d", br.Height), What: "chain",
				Detail: fmt.Sprintf("the last block hashes to %X here, %X at %s: this store is not that network's chain", br.LastBlockHash, []byte(theirs), c.Compare)})
		}
	}

	gwDir := ""
	for _, d := range []string{filepath.Join(data, "gateway"), filepath.Join(home, "gateway")} {
		if _, err := os.Stat(filepath.Join(d, "datalog")); err == nil {
			gwDir = d
			break
		}
	}
	if gwDir == "" {
		rep.Skipped = append(rep.Skipped, "readings: this node runs no gateway (no data/gateway/datalog)")
		rep.Clean = len(rep.Alterations) == 0
		return rep, nil
	}
	gwID := c.Gateway
	if gwID == "" {
		if c.GatewayID == nil {
			return nil, fmt.Errorf("which gateway's log is %s? name its device id", gwDir)
		}
		if gwID, err = c.GatewayID(); err != nil {
			return nil, fmt.Errorf("which gateway's log is %s? %w", gwDir, err)
		}
	}
	// The anchors are read from the state whose hash the last confirmed
	// header carries, and each is proved against it: the ledger's own
	// store is trusted no further than the signatures.
	at := br.AppHashOf
	if br.AppHash == nil || at > app.Height() {
		at = 0
		rep.Skipped = append(rep.Skipped, "anchor records: no header confirmed by the validators' signatures carries the ledger state's hash; they are read unproved")
	}
	st, err := app.View(at)
	if err != nil {
		return nil, fmt.Errorf("reading the ledger state at height %d: %w", at, err)
	}
	lr, err := gateway.CheckLogWith(ctx, gwDir, gwID, st, c.Segments, c.GatewayKey)
	if err != nil {
		return nil, err
	}
	rep.Readings = lr
	if len(lr.Archived) > 0 && c.Segments == nil {
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("archived segments: %d ranges are listed, not fetched (--segments URL of a node fetches and checks them)", len(lr.Archived)))
	} else if len(lr.Archived) > 0 && c.GatewayKey == nil {
		rep.Skipped = append(rep.Skipped, "archived segments: their digests are checked, not their entries (they are sealed to the gateway's key, which could not be loaded: set THINGNET_GATEWAY_PASSPHRASE)")
	}
	for _, a := range lr.AnchorList {
		if at == 0 {
			break
		}
		p, err := app.Prove(record.AnchorAtKey(gwID, a.Size), at)
		if err == nil {
			err = record.VerifyProof(br.AppHash, p.Key, p.Value, p.Proof)
		}
		if err != nil {
			rep.Alterations = append(rep.Alterations, Alteration{Store: "ledger", Item: fmt.Sprintf("anchor record of size %d", a.Size), What: "anchor_record",
				Detail: fmt.Sprintf("the ledger's record of the anchor of size %d does not prove against the app hash %X that the validators signed for height %d: %v", a.Size, br.AppHash, at, err)})
		}
	}
	for _, f := range lr.Findings {
		item := fmt.Sprintf("entry %d", f.Index)
		what := f.What
		switch f.What {
		case "node":
			item = fmt.Sprintf("subtree %d@%d", f.Index, f.Level)
		case gateway.FindAnchor:
			item = fmt.Sprintf("anchor at height %d", lr.FirstBadAnchor.Height)
		case gateway.FindSignature:
			what = "payload/signature"
		case datalog.FindTombstone:
			what = "tombstone" // removed, and said erased without a ledger erasure or retention that covers it
		case gateway.FindArchive, gateway.FindSegment:
			item = fmt.Sprintf("entries from %d", f.Index)
		}
		rep.Alterations = append(rep.Alterations, Alteration{Store: "readings", Item: item, What: what, Detail: f.Detail})
	}
	rep.Clean = len(rep.Alterations) == 0
	return rep, nil
}

// WriteText writes the report for a reader: what was checked, what was
// skipped, and a table of the alterations (or "clean").
func (r *Report) WriteText(w io.Writer) {
	if b := r.Blocks; b != nil {
		fmt.Fprintf(w, "blocks:   %s, heights %d..%d, app hash checked against the ledger at %d heights\n", b.ChainID, b.Base, b.Height, b.AppHashesMet)
	}
	if l := r.Readings; l != nil {
		fmt.Fprintf(w, "readings: gateway %s, %d entries, %d anchors up to size %d\n", l.Gateway, l.Size, l.Anchors, l.Anchored)
		if len(l.Erased) > 0 {
			fmt.Fprintf(w, "erased:   %s\n", erasedSummary(l.Erased))
		}
		for _, a := range l.Archived {
			fmt.Fprintf(w, "archived: entries %d..%d in segment %s: %s\n", a.First, a.First+a.Count-1, a.CID, a.Status)
		}
		if a := l.FirstBadAnchor; a != nil {
			fmt.Fprintf(w, "          first bad anchor: size %d at height %d\n", a.Size, a.Height)
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped:  %s\n", s)
	}
	if r.Compared != "" {
		fmt.Fprintf(w, "compared: the last block with %s\n", r.Compared)
	}
	if r.Clean {
		fmt.Fprintln(w, "clean: nothing altered")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tITEM\tALTERED\tDETAIL")
	for _, a := range r.Alterations {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Store, a.Item, a.What, a.Detail)
	}
	tw.Flush()
}

// erasedSummary says how many entries were erased, and why: "3 entries
// (erasure 1: 2, retention: 1); their values are gone, their hashes and
// proofs remain".
func erasedSummary(es []gateway.ErasedEntry) string {
	by := map[string]int{}
	var order []string
	for _, e := range es {
		k := e.Reason
		switch {
		case e.Reason == gateway.ReasonErasure:
			k = fmt.Sprintf("erasure %d", e.Erasure)
		case k == "":
			k = "unreadable tombstone"
		}
		if by[k] == 0 {
			order = append(order, k)
		}
		by[k]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%s: %d", k, by[k])
	}
	return fmt.Sprintf("%d entries (%s); their values are gone, their hashes and proofs remain (an unbacked tombstone is listed below as altered)", len(es), strings.Join(parts, ", "))
}
