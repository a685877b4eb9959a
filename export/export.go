package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thingnet/thingnet/client"
)

// Row is one reading to export: where it is in its gateway's log, whose it
// is and what it says.
type Row struct {
	Gateway   string
	Index     uint64 // log index of the entry (an envelope of one or more readings)
	EntryHash []byte // the entry's RFC 6962 leaf hash
	// AnchorHeight is the height of the first anchor covering the entry,
	// 0 if it was not anchored when exported (After "stored").
	AnchorHeight int64
	Org          string
	Reading      client.ReadingItem
	// Proof locates the reading's proof: the gateway's GET
	// /v1/readings/{index} URL, which `thingnet verify reading INDEX --node
	// BASE` checks end to end.
	Proof string
}

// Key is the row's unique key: gateway, log index and sequence number (an
// envelope holds each sequence number once).
func (r *Row) Key() string {
	return r.Gateway + "/" + strconv.FormatUint(r.Index, 10) + "/" + strconv.FormatUint(r.Reading.Seq, 10)
}

// Batch is what one step of an exporter hands its sink: the rows of the
// entries [From, Next) of one gateway's log that the exporter may read
// (the others are skipped, not exported). Next is the checkpoint to store
// with them.
type Batch struct {
	Gateway    string
	From, Next uint64
	Rows       []Row
}

// Sink is where an exporter writes.
type Sink interface {
	// Checkpoint returns the next log index to export of gateway, found
	// false if the sink holds none.
	Checkpoint(ctx context.Context, gateway string) (next uint64, found bool, err error)
	// Write delivers b's rows and stores b.Next as gateway's checkpoint.
	// If the stored checkpoint is not b.From it returns ErrCheckpointMoved
	// and delivers nothing: the exporter reads the checkpoint again (the
	// outcome of its previous Write was unknown, or another exporter runs).
	Write(ctx context.Context, b *Batch) error
	Close() error
}

// ErrCheckpointMoved is returned by Sink.Write when the stored checkpoint
// is not where the batch starts.
var ErrCheckpointMoved = errors.New("export: the stored checkpoint is not where the batch starts")

// When an exporter exports an entry.
const (
	AfterStored   = "stored"   // as soon as the gateway stored it
	AfterAnchored = "anchored" // once an anchor on the ledger covers it
)

// Options configure an Exporter.
type Options struct {
	Name   string         // the export's name (metrics, status, checkpoints)
	Kind   string         // the sink's kind: postgres, nats, webhook
	Source *client.Client // the gateway node's API, with the identity the export reads as
	After  string         // AfterStored (default) or AfterAnchored
	// From is where to start when the sink holds no checkpoint.
	From uint64
	// Batch is how many log entries are read and written together
	// (default 500, at most client.MaxLogEntries).
	Batch int
	// Poll is the longest wait between two reads of the log while it has
	// nothing new (the wait doubles from 10ms up to it); default 250ms.
	Poll   time.Duration
	Logger *slog.Logger
	// Committed, if set, is called after each batch is written (tests,
	// benchmarks).
	Committed func(b *Batch, at time.Time)
}

// Exporter follows one gateway's log from the sink's checkpoint and writes
// what its identity may read to the sink.
type Exporter struct {
	o    Options
	sink Sink
	log  *slog.Logger

	delivered, retried, failed, skipped atomic.Uint64

	mu        sync.Mutex
	gateway   string
	next      uint64
	size      uint64
	anchored  uint64
	caughtUp  time.Time // when next last reached the log's size
	lastError string
}

// New returns an exporter of o.Source's gateway log into sink.
func New(o Options, sink Sink) (*Exporter, error) {
	if o.Source == nil {
		return nil, errors.New("export: Options.Source is required")
	}
	switch o.After {
	case "":
		o.After = AfterStored
	case AfterStored, AfterAnchored:
	default:
		return nil, fmt.Errorf("export %s: after %q: use %q or %q", o.Name, o.After, AfterStored, AfterAnchored)
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	o.Batch = min(o.Batch, client.MaxLogEntries)
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Exporter{o: o, sink: sink, log: o.Logger.With("export", o.Name), caughtUp: time.Now()}, nil
}

// Run exports until ctx ends. Errors of the source or the sink are logged,
// counted as retries and tried again with exponential back-off: nothing is
// skipped. It returns ctx's error.
func (e *Exporter) Run(ctx context.Context) error {
	var fails, empties int
	for ctx.Err() == nil {
		idle, err := e.step(ctx)
		if !idle {
			empties = 0
		}
		switch {
		case err != nil && ctx.Err() == nil:
			fails++
			e.retried.Add(1)
			e.mu.Lock()
			e.lastError = err.Error()
			e.mu.Unlock()
			e.log.Warn("export step failed; retrying", "err", err, "attempt", fails)
			sleep(ctx, Backoff(fails, 100*time.Millisecond, 10*time.Second))
		case err == nil && idle:
			fails = 0
			sleep(ctx, e.idleWait(empties))
			empties++
		default:
			fails = 0
		}
	}
	return ctx.Err()
}

// idleWait is how long to wait after n empty reads in a row.
func (e *Exporter) idleWait(n int) time.Duration {
	return min(10*time.Millisecond<<min(n, 16), e.o.Poll)
}

// step exports one batch; idle says the log had nothing to export.
func (e *Exporter) step(ctx context.Context) (idle bool, err error) {
	e.mu.Lock()
	gw, next := e.gateway, e.next
	e.mu.Unlock()
	if gw == "" {
		p, err := e.o.Source.LogEntries(ctx, 0, 0)
		if err != nil {
			return false, err
		}
		cp, found, err := e.sink.Checkpoint(ctx, p.Gateway)
		if err != nil {
			return false, fmt.Errorf("reading the checkpoint of %s: %w", p.Gateway, err)
		}
		if !found {
			cp = e.o.From
		}
		e.mu.Lock()
		e.gateway, e.next = p.Gateway, cp
		e.mu.Unlock()
		e.log.Info("exporting", "gateway", p.Gateway, "from", cp, "after", e.o.After)
		return false, nil
	}
	limit := e.o.Batch
	if e.o.After == AfterAnchored {
		e.mu.Lock()
		anchored := e.anchored
		e.mu.Unlock()
		if anchored <= next {
			limit = 0 // ask the sizes only: has the anchor moved?
		} else {
			limit = int(min(uint64(limit), anchored-next))
		}
	}
	p, err := e.o.Source.LogEntries(ctx, next, limit)
	if err != nil {
		return false, err
	}
	if p.Gateway != gw {
		return false, fmt.Errorf("the source is gateway %s now, not %s: give each gateway its own export", p.Gateway, gw)
	}
	e.note(p)
	if len(p.Entries) == 0 {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.next >= e.size {
			e.caughtUp = time.Now()
		}
		return true, nil
	}
	b := e.batch(p)
	if err := e.sink.Write(ctx, b); err != nil {
		e.failed.Add(1)
		if errors.Is(err, ErrCheckpointMoved) {
			e.mu.Lock()
			e.gateway = "" // read the checkpoint again
			e.mu.Unlock()
		}
		return false, fmt.Errorf("writing entries %d..%d: %w", b.From, b.Next-1, err)
	}
	at := time.Now()
	e.delivered.Add(uint64(len(b.Rows)))
	e.skipped.Add(uint64(len(p.Entries)) - entriesWithRows(b))
	e.mu.Lock()
	e.next = b.Next
	if e.next >= e.size {
		e.caughtUp = at
	}
	e.mu.Unlock()
	if e.o.Committed != nil {
		e.o.Committed(b, at)
	}
	return false, nil
}

// note records the log's sizes a page reports.
func (e *Exporter) note(p *client.LogEntries) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.size, e.anchored = p.Size, p.Anchored
}

// batch turns a page into a batch: the rows of the entries the exporter
// may read; withheld entries are skipped (the checkpoint passes them).
func (e *Exporter) batch(p *client.LogEntries) *Batch {
	b := &Batch{Gateway: p.Gateway, From: p.From, Next: p.Next}
	base := e.o.Source.BaseURL + "/v1/readings/"
	for _, en := range p.Entries {
		if en.Withheld != nil {
			continue
		}
		for _, r := range en.Readings {
			b.Rows = append(b.Rows, Row{Gateway: p.Gateway, Index: en.Index, EntryHash: en.EntryHash, AnchorHeight: en.AnchorHeight,
				Org: en.Org, Reading: r, Proof: base + strconv.FormatUint(en.Index, 10)})
		}
	}
	return b
}

func entriesWithRows(b *Batch) uint64 {
	var n uint64
	last := uint64(1<<64 - 1)
	for _, r := range b.Rows {
		if r.Index != last {
			n++
			last = r.Index
		}
	}
	return n
}

// Status is an exporter's state, for the status API and /metrics.
type Status struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	After   string `json:"after"`
	Gateway string `json:"gateway,omitempty"`
	// Checkpoint is the next log index to export; LogSize and Anchored
	// the gateway's log size and anchored size when last read.
	Checkpoint uint64 `json:"checkpoint"`
	LogSize    uint64 `json:"log_size"`
	Anchored   uint64 `json:"anchored"`
	// LagEntries is how many log entries (envelopes: one reading each,
	// or a device's batch) are not exported yet; LagSeconds how long ago
	// the export was last caught up (0 when it is).
	LagEntries uint64  `json:"lag_entries"`
	LagSeconds float64 `json:"lag_seconds"`
	// Delivered readings; Retried steps (a failed read or write tried
	// again); Failed writes (and, for webhooks, dead-lettered
	// deliveries); Skipped entries the export's identity may not read.
	Delivered uint64 `json:"delivered"`
	Retried   uint64 `json:"retried"`
	Failed    uint64 `json:"failed"`
	Skipped   uint64 `json:"skipped"`
	LastError string `json:"last_error,omitempty"`
}

// deliveryCounter is a sink that retries and gives up on single
// deliveries (webhooks): its counts add to Status's.
type deliveryCounter interface {
	Retried() uint64      // attempts after the first
	DeadLettered() uint64 // deliveries given up on
}

// Status returns the exporter's state now.
func (e *Exporter) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Status{Name: e.o.Name, Kind: e.o.Kind, After: e.o.After, Gateway: e.gateway, Checkpoint: e.next, LogSize: e.size, Anchored: e.anchored,
		Delivered: e.delivered.Load(), Retried: e.retried.Load(), Failed: e.failed.Load(), Skipped: e.skipped.Load(), LastError: e.lastError}
	if c, ok := e.sink.(deliveryCounter); ok {
		s.Retried += c.Retried()
		s.Failed += c.DeadLettered()
	}
	target := e.size
	if e.o.After == AfterAnchored {
		target = e.anchored
	}
	if target > e.next {
		s.LagEntries = target - e.next
		s.LagSeconds = time.Since(e.caughtUp).Seconds()
	}
	return s
}

// Backoff is the wait before attempt n+1 after n failures: exponential
// from base, capped at most, with full jitter in its upper half (so
// exporters and deliveries that failed together do not retry together).
func Backoff(n int, base, most time.Duration) time.Duration {
	d := most
	if n < 30 {
		d = min(base<<max(n-1, 0), most)
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
