package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/client"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockservice"
	blockstore "github.com/ipfs/boxo/blockstore"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	ihelper "github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	mh "github.com/multiformats/go-multihash"
)

// ChunkSize is the UnixFS leaf size: 256 KiB, kubo's default, so the same
// bytes get the same CID in kubo (`ipfs add --cid-version 1`).
const ChunkSize = 256 << 10

// DefaultCacheBytes is the default ceiling of unpinned blocks kept.
const DefaultCacheBytes = 1 << 30

// Config configures a file service.
type Config struct {
	Host    host.Host       // the mesh node's libp2p host (mesh.Node.Host)
	Routing routing.Routing // the mesh's DHT (mesh.Node.Routing); nil: only connected peers are asked
	// Dir holds the blocks (a Pebble datastore) and pins. Empty: in memory.
	Dir        string
	CacheBytes int64 // ceiling of unpinned blocks; default DefaultCacheBytes
	Logger     *slog.Logger
	// ProvideTimeout bounds one DHT announcement; default 30 s.
	ProvideTimeout time.Duration
	// ReprovideInterval is how often every pinned root is announced again
	// (provider records expire); default DefaultReprovideInterval.
	ReprovideInterval time.Duration
	// Ledger, when set, records the node's pins on the ledger (file.pin)
	// and points downloads at the nodes that recorded a pin of the file.
	Ledger *Ledger
	// wrap lets a test wrap the blockstore that bitswap serves from.
	wrapServe func(*Store) blockstoreServe
}

// blockstoreServe is the blockstore bitswap serves from.
type blockstoreServe = blockstore.Blockstore

// Service adds, serves and fetches content-addressed files over bitswap.
type Service struct {
	cfg   Config
	ds    ds.Batching
	store *Store
	bs    *bitswap.Bitswap
	bserv blockservice.BlockService
	dag   ipld.DAGService
	log   *slog.Logger

	pins       pinRecords
	reprovided atomic.Uint64 // provider records announced again

	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// New starts a file service on the host.
func New(cfg Config) (*Service, error) {
	if cfg.Host == nil {
		return nil, errors.New("files: Config.Host is required (the mesh node's host)")
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProvideTimeout <= 0 {
		cfg.ProvideTimeout = 30 * time.Second
	}
	if cfg.ReprovideInterval <= 0 {
		cfg.ReprovideInterval = DefaultReprovideInterval
	}
	if cfg.Ledger != nil && (cfg.Ledger.ID == "" || cfg.Ledger.View == nil || cfg.Ledger.Enqueue == nil) {
		return nil, errors.New("files: Config.Ledger needs ID, View and Enqueue")
	}
	var d ds.Batching
	if cfg.Dir == "" {
		d = dssync.MutexWrap(ds.NewMapDatastore())
	} else {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("files: %w", err)
		}
		p, err := pebbleds.NewDatastore(filepath.Join(cfg.Dir, "blocks"), pebbleds.WithPebbleOpts(blockStoreOptions()), pebbleds.WithCacheSize(blockCacheBytes))
		if err != nil {
			return nil, fmt.Errorf("files: opening the block store in %s: %w", cfg.Dir, err)
		}
		d = flushOnSync{p}
	}
	d = &closingDS{ds: d}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := NewStore(ctx, d, cfg.CacheBytes)
	if err != nil {
		cancel()
		d.Close()
		return nil, err
	}
	s := &Service{cfg: cfg, ds: d, store: st, log: cfg.Logger, ctx: ctx, cancel: cancel, pins: pinRecords{pending: map[string]bool{}}}
	var served blockstoreServe = st
	if cfg.wrapServe != nil {
		served = cfg.wrapServe(st)
	}
	net := bsnet.NewFromIpfsHost(cfg.Host)
	var finder routing.ContentDiscovery
	if cfg.Routing != nil {
		finder = cfg.Routing
	}
	s.bs = bitswap.New(ctx, net, finder, served,
		// A session searches the DHT for providers once it has had no
		// block for this long: kubo's 1 s. At 200 ms a busy node searched
		// (and then broadcast want-haves to every peer it found) while the
		// peers it was connected to were still sending: 5-10% slower
		// distribution (BenchmarkDistribute).
		bitswap.ProviderSearchDelay(time.Second),
		bitswap.MaxOutstandingBytesPerPeer(maxOutstandingBytesPerPeer),
		bitswap.WithClientOption(client.WithDontHaveTimeoutConfig(dontHaveTimeouts())),
		bitswap.WithoutDuplicatedBlockStats())
	s.bserv = blockservice.New(st, receivedExchange{s.bs})
	s.dag = merkledag.NewDAGService(s.bserv)
	if cfg.Routing != nil || cfg.Ledger != nil {
		s.wg.Add(1)
		go s.reprovide()
	}
	return s, nil
}

// The block store's Pebble settings. Blocks are values of up to 256 KiB
// (a leaf) whose bytes are mostly already compressed or random (media,
// firmware, ciphertext): Pebble's defaults (4 MiB memtables, Snappy on
// every block, an 8 MiB cache) made a node spend a third of its CPU
// flushing and compacting while it downloaded, and read the blocks it had
// just written back from disk (BenchmarkDistribute, docs/benchmarks.md).
const (
	blockMemTableBytes = 32 << 20
	blockCacheBytes    = 64 << 20
)

// dontHaveTimeouts is how long bitswap waits for a peer's answer to a
// want-block before it takes the silence for a DONT_HAVE and asks another
// peer: boxo's defaults but at least 1 s, not 50 ms. The timeout follows
// the measured message latency, which on a LAN or loopback is a few
// milliseconds, while a busy provider queues up to
// maxOutstandingBytesPerPeer of blocks before it answers: at 50 ms a
// downloading peer gave up on a provider that was still sending and asked
// another peer for the same blocks, up to a third of a 64 MiB file
// received twice at 8 peers and 10-20% more CPU (BenchmarkDistribute,
// blocks-rcvd/peer). A provider that is really gone is still left after
// 1 s, and one that disconnects at once.
func dontHaveTimeouts() *client.DontHaveTimeoutConfig {
	c := client.DefaultDontHaveTimeoutConfig()
	c.MinTimeout = time.Second
	return c
}

// flushOnSync is the block store's datastore: Pebble without a write-ahead
// log, whose Sync flushes the memtable to disk.
//
// A block written through a WAL was written twice (log, then table), and
// the store's file writes were a quarter of a downloading node's CPU
// (BenchmarkDistribute).
// Blocks need no log: a block lost in a crash is fetched again, and
// Pebble keeps what it flushed a consistent prefix of what was written, so
// no pin outlives its blocks. What must survive a crash, pins and unpins,
// is made durable by Store calling Sync, and Close flushes everything.
type flushOnSync struct{ *pebbleds.Datastore }

func (f flushOnSync) Sync(context.Context, ds.Key) error { return f.DB.Flush() }

// maxOutstandingBytesPerPeer is how many bytes of blocks bitswap's server
// has on its way to one peer before it serves the next request of that
// peer (boxo's default: 1 MiB, four leaves).
const maxOutstandingBytesPerPeer = 8 << 20

func blockStoreOptions() *pebble.Options {
	o := &pebble.Options{MemTableSize: blockMemTableBytes, DisableWAL: true, FormatMajorVersion: pebble.FormatValueSeparation}
	// Blocks go to blob files when the memtable is flushed and stay there:
	// compactions move only the keys and the blobs' handles. Without it
	// every block was rewritten by each compaction from L0 down, a sixth
	// of a downloading node's CPU (BenchmarkDistribute's profiles).
	o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           1 << 10, // pins and small dag-pb nodes stay in the tables
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute, // evicted blocks' space comes back in rewrites
			TargetGarbageRatio:    0.2,
		}
	}
	for i := range o.Levels {
		o.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	}
	return o
}

// Close stops bitswap and closes the block store.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	err := s.bs.Close()
	return errors.Join(err, s.ds.Close())
}

// Store is the service's bounded block store.
func (s *Service) Store() *Store { return s.store }

// Progress is told how many bytes have gone through so far.
type Progress func(done int64)

// Added is the result of Add.
type Added struct {
	CID  cid.Cid
	Size uint64 // bytes of the file
}

// Add imports r as a UnixFS file (balanced DAG, 256 KiB chunks, CIDv1, raw
// leaves), pins it, announces it and records the pin on the ledger.
// progress may be nil.
func (s *Service) Add(ctx context.Context, r io.Reader, progress Progress) (Added, error) {
	cr := &countReader{r: r, progress: progress}
	batch := ipld.NewBufferedDAG(ctx, s.dag)
	params := ihelper.DagBuilderParams{
		Maxlinks:   ihelper.DefaultLinksPerBlock,
		RawLeaves:  true,
		CidBuilder: cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256},
		Dagserv:    batch,
	}
	db, err := params.New(chunker.NewSizeSplitter(cr, ChunkSize))
	if err != nil {
		return Added{}, fmt.Errorf("files: add: %w", err)
	}
	release := s.store.hold()
	defer release(ctx)
	n, err := balanced.Layout(db)
	if err != nil {
		return Added{}, fmt.Errorf("files: add: %w", err)
	}
	if err := batch.Commit(); err != nil {
		return Added{}, fmt.Errorf("files: add: %w", err)
	}
	if err := s.store.Pin(ctx, n.Cid()); err != nil {
		return Added{}, err
	}
	s.provide(n.Cid())
	s.recordPin(n.Cid(), true)
	return Added{CID: n.Cid(), Size: uint64(cr.n)}, nil
}

// provide announces root in the DHT in the background.
func (s *Service) provide(root cid.Cid) {
	if s.cfg.Routing == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ProvideTimeout)
		defer cancel()
		if err := s.cfg.Routing.Provide(ctx, root, true); err != nil {
			s.log.Debug("files: announcing a provider record failed", "cid", root, "err", err)
		}
	}()
}

// Provide announces root in the DHT now, waiting for the result.
func (s *Service) Provide(ctx context.Context, root cid.Cid) error {
	if s.cfg.Routing == nil {
		return errors.New("files: no DHT: the node runs without one")
	}
	return s.cfg.Routing.Provide(ctx, root, true)
}

// GetOptions tunes Get.
type GetOptions struct {
	Pin      bool            // keep the file (pinned) after the download
	Peers    []peer.AddrInfo // providers to connect to first (besides those the DHT finds)
	Progress Progress
}

// Get fetches the file root (from every provider that has it, each block
// checked against its CID; the nodes that recorded a pin of it on the
// ledger are asked first) and writes its bytes to w.
func (s *Service) Get(ctx context.Context, root cid.Cid, w io.Writer, o GetOptions) (int64, error) {
	s.connect(ctx, o.Peers)
	if local, _ := s.store.Has(ctx, root); !local {
		s.connectPinners(ctx, root)
	}
	sess := merkledag.NewSession(ctx, s.dag)
	if o.Pin {
		release := s.store.hold()
		defer release(ctx)
		if err := s.fetchAll(ctx, root, sess); err != nil {
			return 0, err
		}
		if err := s.store.Pin(ctx, root); err != nil {
			return 0, err
		}
		s.provide(root)
		s.recordPin(root, true)
	}
	n, err := sess.Get(ctx, root)
	if err != nil {
		return 0, fmt.Errorf("files: get %s: %w", root, err)
	}
	r, err := uio.NewDagReader(ctx, n, sess)
	if err != nil {
		return 0, fmt.Errorf("files: %s is not a UnixFS file: %w", root, err)
	}
	defer r.Close()
	if !o.Pin && r.Size() <= uint64(s.cfg.CacheBytes/2) {
		// Want the whole DAG at once, level by level, while the reader
		// reads in order: its own look-ahead is 10 blocks and stalls a
		// round trip every 10, which a busy machine makes long. The
		// blocks land in the store (the cache holds twice the file), where
		// the reader finds them.
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.fetchAll(pctx, root, sess) }() //nolint:errcheck // the reader reports what is missing
		defer func() { cancel(); <-done }()
	}
	cw := &countWriter{w: w, progress: o.Progress}
	if _, err := io.Copy(cw, r); err != nil {
		return cw.n, fmt.Errorf("files: get %s: %w", root, err)
	}
	return cw.n, nil
}

// Fetch brings every block of root's DAG to the local store, optionally pinned.
func (s *Service) Fetch(ctx context.Context, root cid.Cid, pin bool, peers ...peer.AddrInfo) error {
	s.connect(ctx, peers)
	if local, _ := s.store.Has(ctx, root); !local {
		s.connectPinners(ctx, root)
	}
	sess := merkledag.NewSession(ctx, s.dag)
	if pin {
		release := s.store.hold()
		defer release(ctx)
	}
	if err := s.fetchAll(ctx, root, sess); err != nil {
		return err
	}
	if pin {
		if err := s.store.Pin(ctx, root); err != nil {
			return err
		}
		s.provide(root)
		s.recordPin(root, true)
	}
	return nil
}

// fetchAll walks the DAG level by level, asking for each level's blocks at
// once so that a session spreads them over all its providers.
func (s *Service) fetchAll(ctx context.Context, root cid.Cid, ng ipld.NodeGetter) error {
	level := []cid.Cid{root}
	for len(level) > 0 {
		var next []cid.Cid
		for opt := range ng.GetMany(ctx, level) {
			if opt.Err != nil {
				return fmt.Errorf("files: fetch %s: %w", root, opt.Err)
			}
			for _, l := range opt.Node.Links() {
				next = append(next, l.Cid)
			}
		}
		level = next
	}
	return nil
}

func (s *Service) connect(ctx context.Context, peers []peer.AddrInfo) {
	for _, p := range peers {
		if p.ID == s.cfg.Host.ID() {
			continue
		}
		if err := s.cfg.Host.Connect(ctx, p); err != nil {
			s.log.Debug("files: connecting to a provider failed", "peer", p.ID, "err", err)
		}
	}
}

// Pin fetches root if needed and keeps it (recorded on the ledger).
func (s *Service) Pin(ctx context.Context, root cid.Cid) error { return s.Fetch(ctx, root, true) }

// Unpin lets root's blocks be evicted from the cache, and records on the
// ledger that this node no longer pins it.
func (s *Service) Unpin(ctx context.Context, root cid.Cid) error {
	if err := s.store.Unpin(ctx, root); err != nil {
		return err
	}
	s.recordPin(root, false)
	return nil
}

// Reprovided is the number of provider records announced again so far.
func (s *Service) Reprovided() uint64 { return s.reprovided.Load() }

// Has reports whether the whole DAG of root is local.
func (s *Service) Has(ctx context.Context, root cid.Cid) bool {
	_, err := s.store.walkLocal(ctx, root)
	return err == nil
}

// Stat returns the size of a local or remote UnixFS file.
func (s *Service) Stat(ctx context.Context, root cid.Cid) (uint64, error) {
	n, err := s.dag.Get(ctx, root)
	if err != nil {
		return 0, err
	}
	r, err := uio.NewDagReader(ctx, n, s.dag)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return r.Size(), nil
}

type countReader struct {
	r        io.Reader
	n        int64
	progress Progress
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n)
	}
	return n, err
}

type countWriter struct {
	w        io.Writer
	n        int64
	progress Progress
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n)
	}
	return n, err
}

// TransferStats counts what bitswap moved.
type TransferStats struct {
	BlocksReceived    uint64 `json:"blocks_received"`
	BytesReceived     uint64 `json:"bytes_received"`
	DupBlocksReceived uint64 `json:"dup_blocks_received"`
	BlocksSent        uint64 `json:"blocks_sent"`
	BytesSent         uint64 `json:"bytes_sent"`
}

// Transfers returns the bitswap counters.
func (s *Service) Transfers() TransferStats {
	st, err := s.bs.Stat()
	if err != nil {
		return TransferStats{}
	}
	return TransferStats{BlocksReceived: st.BlocksReceived, BytesReceived: st.DataReceived, DupBlocksReceived: st.DupBlksReceived,
		BlocksSent: st.BlocksSent, BytesSent: st.DataSent}
}
