package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/reading"
)

// Config configures a gateway. Dir and Key are required.
type Config struct {
	Dir string        // data log and state
	Key *identity.Key // the gateway's device key (registered with class "gateway")
	// ID is the gateway's device id; default Key.ID().
	ID string

	// AnchorInterval is the longest new log entries wait for an anchor
	// (counted from when the duty loop first sees them); default
	// DefaultAnchorInterval. AnchorBudget is the chain an anchor may cost
	// before that, in bytes of anchor tx per 10,000 new entries: an anchor
	// goes out as soon as the entries it adds pay for it; default
	// DefaultAnchorBudget; negative: anchors only every AnchorInterval.
	AnchorInterval time.Duration
	AnchorBudget   int
	BatchWindow    time.Duration // how long the verifier waits to fill a batch; default 2ms
	MaxBatch       int           // readings verified and stored together; default 1024
	QueueLen       int           // readings waiting for verification; default 8192

	Limits ratelimit.Limits // per device (and per source, unless SourceLimits); zero value: ratelimit.DefaultLimits()
	// SourceLimits bound each source address (an IPv4 address, an IPv6
	// /64) on every transport; zero value: Limits. Raise them where many
	// devices share one address (a NAT, a simulated fleet on loopback):
	// each device stays bound by Limits.
	SourceLimits ratelimit.Limits
	MaxKeys      int  // devices and sources tracked by each limiter; default 100000
	NoSync       bool // tests only: do not fsync the data log

	// TxQueueLen bounds the ledger messages other components queue for the
	// gateway key (Enqueue); default 1024.
	TxQueueLen int
	// TxResubmit is how long a gateway tx may stay uncommitted before it is
	// sent again; default 30s.
	TxResubmit time.Duration

	// RetentionInterval is how often the gateway drops the values that
	// their organisations' retention periods expired (by Clock); default
	// DefaultRetentionInterval.
	RetentionInterval time.Duration

	// MaxSkew is how far after the gateway's clock a reading may be
	// dated: a later one is refused (ErrFutureReading); default
	// DefaultMaxSkew. LateAfter is how long before its receipt a reading
	// may be dated and not be flagged late (a device that buffered it
	// offline); default DefaultLateAfter (docs/readings.md, "Time").
	MaxSkew, LateAfter time.Duration
	// NoRollups turns the roll-ups off (rollup.go): bucketed queries are
	// then computed from the raw readings. For measuring what they cost.
	NoRollups bool

	Logger *slog.Logger
	// Clock is the gateway's source of time (tokens' freshness, rate
	// limits, quarantine windows, receive times); default
	// ratelimit.SystemClock().
	Clock ratelimit.Clock
}

// The defaults of Config.MaxSkew and Config.LateAfter.
const (
	DefaultMaxSkew   = 5 * time.Minute
	DefaultLateAfter = time.Hour
)

// Gateway is a running gateway core.
type Gateway struct {
	cfg     Config
	id      string
	ledger  Ledger
	log     *slog.Logger
	clock   ratelimit.Clock
	data    *datalog.Log
	index   *index
	seqs    *reading.SeqTracker
	limiter *ratelimit.Limiter // devices (edge.DeviceKey)
	sources *ratelimit.Limiter // source addresses (edge.SourceKey)
	jobs    chan *job
	keys    *identity.DIDCache
	devices deviceCache // active devices of the latest height looked up (auth.go)
	// expanded holds the devices' expanded Ed25519 keys for batch
	// verification (ingest.go).
	expanded *identity.ExpandedKeys

	lastStored map[string][32]byte // per device, hash of the last envelope stored

	feed  feed
	reads readQuotas    // read grants' daily quotas (read.go)
	done  chan struct{} // closed by Close, ends streams

	offMu     sync.Mutex
	offenders map[string]offender // reported devices, candidates for quarantine

	stats stats
	arch  atomic.Pointer[archiver] // archive.go; nil until StartArchive
	// storeMu orders storing entries (log and index) with erasing them.
	storeMu sync.Mutex

	txMu     sync.Mutex
	txq      []*queued     // messages for the gateway key, sent by the duty loop
	txClosed bool          // the duty loop ended: Enqueue refuses
	txWake   chan struct{} // tells the duty loop that a message was queued

	closeOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// New opens the gateway's data log and starts its verifier and anchoring loops.
func New(c Config, l Ledger) (*Gateway, error) {
	if c.Dir == "" || c.Key == nil {
		return nil, errors.New("gateway: Config.Dir and Config.Key are required")
	}
	if c.ID == "" {
		c.ID = c.Key.ID()
	}
	if c.AnchorInterval <= 0 {
		c.AnchorInterval = DefaultAnchorInterval
	}
	if c.AnchorBudget == 0 {
		c.AnchorBudget = DefaultAnchorBudget
	}
	if c.BatchWindow <= 0 {
		c.BatchWindow = 2 * time.Millisecond
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1024
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 8192
	}
	if c.Limits == (ratelimit.Limits{}) {
		c.Limits = ratelimit.DefaultLimits()
	}
	if c.SourceLimits == (ratelimit.Limits{}) {
		c.SourceLimits = c.Limits
	}
	if err := c.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: per-device limits: %w", err)
	}
	if err := c.SourceLimits.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: per-source limits: %w", err)
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 100_000
	}
	if c.TxQueueLen <= 0 {
		c.TxQueueLen = 1024
	}
	if c.TxResubmit <= 0 {
		c.TxResubmit = txResubmit
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = DefaultRetentionInterval
	}
	if c.MaxSkew <= 0 {
		c.MaxSkew = DefaultMaxSkew
	}
	if c.LateAfter <= 0 {
		c.LateAfter = DefaultLateAfter
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = ratelimit.SystemClock()
	}
	data, err := datalog.Open(datalog.Config{Dir: filepath.Join(c.Dir, "datalog"), Logger: c.Logger, NoSync: c.NoSync})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{
		cfg: c, id: c.ID, ledger: l, log: c.Logger, clock: c.Clock, data: data,
		seqs:    reading.NewSeqTracker(c.MaxKeys),
		limiter: ratelimit.New(c.Limits, c.MaxKeys, c.Clock),
		sources: ratelimit.New(c.SourceLimits, c.MaxKeys, c.Clock),
		jobs:    make(chan *job, c.QueueLen),
		keys:    identity.NewDIDCache(c.MaxKeys),

		expanded: identity.NewExpandedKeys(min(c.MaxKeys, expandedKeys)),

		lastStored: map[string][32]byte{},
		offenders:  map[string]offender{},
		done:       make(chan struct{}),
		txWake:     make(chan struct{}, 1),
	}
	if g.index, err = openIndex(filepath.Join(c.Dir, "index"), c.Logger, !c.NoRollups); err != nil {
		data.Close()
		return nil, err
	}
	if err := g.restore(); err != nil {
		g.index.close()
		data.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.wg.Add(3)
	go g.verifier(ctx)
	go g.duties(ctx)
	go g.eraser(ctx)
	return g, nil
}

// ID is the gateway's device id.
func (g *Gateway) ID() string { return g.id }

// Log is the gateway's data log.
func (g *Gateway) Log() *datalog.Log { return g.data }

// Close stops the loops (pending readings are refused) and closes the log.
// It is idempotent.
func (g *Gateway) Close() error {
	var err error
	g.closeOnce.Do(func() {
		close(g.done)
		g.cancel()
		g.wg.Wait()
		err = errors.Join(g.index.close(), g.data.Close())
	})
	return err
}

// restore loads the replay state from the index, after indexing what the
// log holds beyond it (what the index lost in a crash): a restarted gateway
// refuses the readings it stored before, without reading the whole log.
func (g *Gateway) restore() error {
	from, err := g.index.covered()
	if err != nil {
		return err
	}
	size := g.data.Size()
	if from > size {
		return fmt.Errorf("gateway: the readings index covers %d entries but the log has %d; remove %s to rebuild it", from, size, filepath.Join(g.cfg.Dir, "index"))
	}
	if g.index.rollups {
		rolled, err := g.index.u64(keyRolled, "roll-up meta")
		if err != nil {
			return err
		}
		layout, err := g.index.u64(keyRollupLayout, "roll-up layout")
		if err != nil {
			return err
		}
		switch {
		case rolled > from || layout != rollupLayout:
			g.log.Info("rebuilding the roll-ups from the log", "entries", from, "layout", layout)
			if err := g.index.rebuildRollups(from, g.entryAt); err != nil {
				return fmt.Errorf("gateway: rebuilding the roll-ups: %w", err)
			}
		case rolled < from: // pending at a crash (rollup.go)
			g.log.Info("rolling up the entries whose roll-ups were pending at a crash", "from", rolled, "to", from)
			if err := g.index.catchUpRollups(rolled, from, g.entryAt); err != nil {
				return fmt.Errorf("gateway: catching up the roll-ups: %w", err)
			}
		}
	}
	for from < size {
		n := min(size-from, 1024)
		ents := make([]*reading.Entry, 0, n)
		for i := from; i < from+n; i++ {
			e, err := g.entryAt(i)
			if err != nil {
				return err
			}
			ents = append(ents, e) // nil if erased: nothing to index
		}
		if err := g.index.add(from, ents); err != nil {
			return fmt.Errorf("gateway: indexing log entries %d..%d: %w", from, from+n-1, err)
		}
		from += n
	}
	return g.index.replayState(func(device string, seq uint64, hash [32]byte) {
		g.seqs.Accept(device, seq)
		if len(g.lastStored) < g.cfg.MaxKeys {
			g.lastStored[device] = hash
		}
	})
}

// entryAt decodes log entry i (fetched from its segment if archived);
// nil for an erased one.
func (g *Gateway) entryAt(i uint64) (*reading.Entry, error) {
	raw, err := g.entry(i)
	if errors.Is(err, datalog.ErrErased) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: reading log entry %d: %w", i, err)
	}
	e, err := reading.DecodeEntry(raw)
	if err != nil {
		return nil, fmt.Errorf("gateway: log entry %d does not decode: %w", i, err)
	}
	return e, nil
}
