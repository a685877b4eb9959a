package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/types"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// gwAnchorWaitTimeout bounds the wait, after the load, for an anchor that
// covers the whole data log.
const gwAnchorWaitTimeout = time.Minute

// gwBenchLimits are the gateway's abuse limits for the benchmark: high enough
// that they never bind (one device here publishes thousands of readings/s,
// and every client connects from 127.0.0.1), so the figures are the
// gateway's capacity, not its per-device budget (10 msg/s by default).
func gwBenchLimits() ratelimit.Limits {
	return ratelimit.Limits{
		MsgsPerSec: 1e9, Burst: 1 << 30, BytesPerSec: 1e12, ByteBurst: 1 << 40,
		ConnectsPerSec: 1e6, ConnectBurst: 1 << 20, MaxPacket: 128 << 10,
	}
}

// anchorObserver follows the node's committed blocks and notes the
// gateway's anchor txs: when each was committed, the log size it anchors and
// its size in bytes.
type anchorObserver struct {
	gw         string
	subscriber string
	bus        *types.EventBus

	mu      sync.Mutex
	anchors []anchorSeen // in commit order
	changed chan struct{}
	err     error
	done    chan struct{}
	stop    chan struct{}
}

type anchorSeen struct {
	at    time.Time
	size  uint64 // log entries the anchor covers
	bytes int    // tx size
}

func newAnchorObserver(n *chain.Node, gw string) (*anchorObserver, error) {
	o := &anchorObserver{gw: gw, subscriber: "bench-gateway-" + rand.Text(), bus: n.Comet().EventBus(),
		changed: make(chan struct{}, 1), done: make(chan struct{}), stop: make(chan struct{})}
	sub, err := o.bus.Subscribe(context.Background(), o.subscriber, types.EventQueryNewBlock, blockEventCapacity)
	if err != nil {
		return nil, fmt.Errorf("bench: subscribe to new blocks: %w", err)
	}
	go o.follow(sub)
	return o, nil
}

func (o *anchorObserver) follow(sub types.Subscription) {
	defer close(o.done)
	for {
		select {
		case msg := <-sub.Out():
			ev, ok := msg.Data().(types.EventDataNewBlock)
			if !ok {
				continue
			}
			at := time.Now()
			results := ev.ResultFinalizeBlock.TxResults
			for i, raw := range ev.Block.Txs {
				if i >= len(results) || results[i].Code != abci.CodeTypeOK {
					continue
				}
				tx, err := record.DecodeTx(raw)
				if err != nil || tx.Signer != o.gw {
					continue
				}
				if a, ok := tx.Msg.(*record.DataAnchor); ok {
					o.mu.Lock()
					o.anchors = append(o.anchors, anchorSeen{at: at, size: a.Size, bytes: len(raw)})
					o.mu.Unlock()
					select {
					case o.changed <- struct{}{}:
					default:
					}
				}
			}
		case <-sub.Canceled():
			o.mu.Lock()
			o.err = fmt.Errorf("bench: block subscription cancelled: %v", sub.Err())
			o.mu.Unlock()
			select {
			case o.changed <- struct{}{}:
			default:
			}
			return
		case <-o.stop:
			return
		}
	}
}

// waitCovered returns once an anchor covering size entries is committed.
func (o *anchorObserver) waitCovered(ctx context.Context, size uint64) error {
	for {
		o.mu.Lock()
		covered := len(o.anchors) > 0 && o.anchors[len(o.anchors)-1].size >= size
		err := o.err
		o.mu.Unlock()
		if covered {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-o.changed:
		case <-ctx.Done():
			return fmt.Errorf("bench: no anchor covers the log's %d entries: %w", size, ctx.Err())
		}
	}
}

// anchoredAt returns when the first anchor covering log index i was committed.
func (o *anchorObserver) anchoredAt(i uint64) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := sort.Search(len(o.anchors), func(k int) bool { return o.anchors[k].size > i })
	if k == len(o.anchors) {
		return time.Time{}, false
	}
	return o.anchors[k].at, true
}

func (o *anchorObserver) close() {
	close(o.stop)
	if o.bus.IsRunning() {
		_ = o.bus.UnsubscribeAll(context.Background(), o.subscriber)
	}
	<-o.done
}

// runGatewayLoad starts a one-validator ledger network and a gateway with
// its MQTT broker, runs the client load, waits until the whole log is
// anchored, and checks the log against the PUBACKs.
func runGatewayLoad(ctx context.Context, dir string, w *gatewayWorkload, pool [][][]byte, batch, round int, cfg GatewayBenchConfig) (GatewayRun, error) {
	home, err := os.MkdirTemp(dir, "gateway-")
	if err != nil {
		return GatewayRun{}, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(home)
	var app *ledger.App
	net, err := chain.StartLocalNet(chain.LocalNetConfig{
		Dir: filepath.Join(home, "net"), Validators: 1, ChainID: w.chainID, FastBlocks: true, AppState: w.genesis,
		NewApp: func(_ int, nodeHome string) (abci.Application, error) {
			a, err := ledger.NewApp(ledger.Config{Dir: filepath.Join(nodeHome, "data", "ledger")})
			app = a
			return a, err
		},
	}, nil)
	if err != nil {
		return GatewayRun{}, err
	}
	res, err := runGatewayOnNet(ctx, home, net, app, w, pool, batch, round, cfg)
	return res, errors.Join(err, net.Stop())
}

func runGatewayOnNet(ctx context.Context, home string, net *chain.LocalNet, app *ledger.App, w *gatewayWorkload, pool [][][]byte, batch, round int, cfg GatewayBenchConfig) (GatewayRun, error) {
	readyCtx, cancel := context.WithTimeout(ctx, netReadyTimeout)
	defer cancel()
	if err := net.WaitForHeight(readyCtx, 2); err != nil {
		return GatewayRun{}, fmt.Errorf("bench: ledger net not producing blocks: %w", err)
	}
	node := net.Node(0)
	obs, err := newAnchorObserver(node, w.gwKey.ID())
	if err != nil {
		return GatewayRun{}, err
	}
	defer obs.close()
	gw, err := gateway.New(gateway.Config{
		Dir: filepath.Join(home, "gateway"), Key: w.gwKey, AnchorInterval: cfg.AnchorInterval, AnchorBudget: cfg.AnchorBudget,
		BatchWindow: cfg.BatchWindow, MaxBatch: cfg.MaxBatch,
		Limits: gwBenchLimits(), // NoSync stays false: every PUBACK waits for an fsync
	}, gateway.NodeLedger{App: app, Comet: node.Client()})
	if err != nil {
		return GatewayRun{}, err
	}
	defer gw.Close()
	addr, stop, err := startGatewayFront(gw, app, len(w.devices), cfg)
	if err != nil {
		return GatewayRun{}, err
	}
	defer stop()

	l := &clientLoad{addr: addr, w: w, pool: pool, batch: batch, cfg: cfg, record: true}
	var profErr error
	if cfg.ProfileDir != "" {
		var f *os.File
		l.onWindow = func(open bool) {
			if open {
				if f, profErr = os.Create(filepath.Join(cfg.ProfileDir, fmt.Sprintf("gateway-b%d-r%d.pprof", batch, round))); profErr == nil {
					if profErr = pprof.StartCPUProfile(f); profErr != nil {
						f.Close()
						f = nil
					}
				}
				return
			}
			if f != nil {
				pprof.StopCPUProfile()
				profErr = f.Close()
			}
		}
	}
	load, err := l.run(ctx)
	if err != nil {
		return GatewayRun{}, err
	}
	if profErr != nil {
		return GatewayRun{}, fmt.Errorf("bench: cpu profile: %w", profErr)
	}
	res := GatewayRun{LoadRun: load}

	// Every envelope stored gets anchored, then its latency is known.
	size := gw.Log().Size()
	actx, cancel := context.WithTimeout(ctx, cfg.AnchorInterval+gwAnchorWaitTimeout)
	defer cancel()
	if err := obs.waitCovered(actx, size); err != nil {
		return res, err
	}
	st := gw.Stats()
	res.Readings, res.Rejected, res.Limited, res.Overloaded = st.Readings, st.Rejected, st.Limited, st.Overloaded
	res.LogSize = size

	// Where each published envelope is in the log.
	type ref struct{ d, k int }
	published := map[[32]byte]ref{}
	for d, dl := range l.devs {
		for k, t := range dl.pubAt {
			if !t.IsZero() {
				published[sha256.Sum256(pool[d][k])] = ref{d, k}
			}
		}
	}
	index := map[ref]uint64{}
	for i := range size {
		e, err := gw.Log().Entry(i)
		if err != nil {
			return res, fmt.Errorf("bench: reading log entry %d: %w", i, err)
		}
		ent, err := reading.DecodeEntry(e)
		if err != nil {
			return res, fmt.Errorf("bench: log entry %d: %w", i, err)
		}
		if r, ok := published[sha256.Sum256(ent.Envelope.Raw)]; ok {
			index[r] = i
		}
	}

	var lat []time.Duration
	for d, dl := range l.devs {
		for k, acked := range dl.ackAt {
			if acked.IsZero() {
				continue
			}
			res.Acked++
			i, ok := index[ref{d, k}]
			if !ok {
				res.AckedMissing++
				continue
			}
			pub := dl.pubAt[k]
			if pub.Before(l.winStart) || !pub.Before(l.winEnd) {
				continue
			}
			if at, ok := obs.anchoredAt(i); ok {
				lat = append(lat, at.Sub(pub))
			}
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50, res.P99, res.Samples = percentile(lat, 50), percentile(lat, 99), len(lat)
	}
	obs.mu.Lock()
	for _, a := range obs.anchors {
		res.AnchorTxs++
		res.AnchorBytes += a.bytes
	}
	obs.mu.Unlock()
	if res.Readings > 0 {
		res.BytesPer10k = float64(res.AnchorBytes) / float64(res.Readings) * 10_000
	}
	return res, nil
}

// startGatewayFront starts gw's server for cfg's transport on a free
// loopback port, as a node starts it: the MQTT broker, the CoAP server
// (MaxInFlight raised to the load's devices × window, so that the load's
// requests are never refused as too many), or the node's HTTP API with the
// gateway's routes.
func startGatewayFront(gw *gateway.Gateway, app *ledger.App, devices int, cfg GatewayBenchConfig) (string, func(), error) {
	switch cfg.Transport {
	case TransportCoAP:
		s, err := gw.StartCoAP(gateway.CoAPConfig{Listen: "127.0.0.1:0", MaxInFlight: devices*cfg.Window + 64})
		if err != nil {
			return "", nil, err
		}
		return s.Addr(), func() { _ = s.Close() }, nil
	case TransportHTTP:
		s := api.New(app, nil, nil)
		gw.Mount(s, app)
		if err := s.Start("127.0.0.1:0"); err != nil {
			return "", nil, err
		}
		return s.Addr(), func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
		}, nil
	default:
		b, err := gw.StartMQTT(gateway.MQTTConfig{Listen: "127.0.0.1:0", MaxClients: devices + 16})
		if err != nil {
			return "", nil, err
		}
		return b.Addr(), func() { _ = b.Close() }, nil
	}
}
