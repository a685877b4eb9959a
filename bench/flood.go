package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/mempool"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/chain"
)

// Defaults for zero FloodConfig fields.
const (
	DefaultFloodTimeout      = 2 * time.Minute
	defaultWorkersPerNode    = 4
	mempoolFullBackoffStart  = time.Millisecond
	mempoolFullBackoffLimit  = 100 * time.Millisecond
	mempoolWindowNumerator   = 3 // at most 3/4 of the smallest mempool outstanding
	mempoolWindowDenominator = 4
)

// FloodConfig describes one flood.
type FloodConfig struct {
	Txs         [][]byte      // distinct transactions, submitted in order
	Rate        int           // target tx/s; 0 = as fast as the nodes accept them
	Concurrency int           // submitting workers; default 4 per node
	Timeout     time.Duration // for the whole flood, submission and commits; default DefaultFloodTimeout
	CPUProfile  string        // if set, a CPU profile of the flood (as FloodResult.CPU) is written to this file
	// Signers, if not 0, says that tx i and tx i-Signers have the same
	// signer and consecutive nonces: tx i is sent only once tx i-Signers
	// has its CheckTx answer, as a client sending several txs does.
	// Otherwise a worker descheduled with tx i-Signers lets another send
	// tx i first, which the ledger refuses as a nonce gap, and with it
	// every later tx of that signer.
	Signers int
	// CPUTime, if set, measures FloodResult.CPU instead of this process's
	// getrusage: a flood of nodes in other processes gives theirs
	// (ProcessesCPU).
	CPUTime func() time.Duration
}

// FloodResult is what a flood measured.
type FloodResult struct {
	Submitted int // txs handed to BroadcastTxSync
	Committed int // accepted txs seen in a committed block (whatever their result code)
	Rejected  int // txs refused by CheckTx or by the mempool
	Failed    int // committed txs whose execution returned a non-zero code

	// Duration runs from the first submission to the last commit; TxPerSec is
	// Committed/Duration.
	Duration time.Duration
	TxPerSec float64

	// P50 and P99 are of submit-to-commit latency over committed txs: from the first
	// BroadcastTxSync call for a tx (a full mempool makes the call repeat) to the first
	// node's NewBlock event for the block holding it.
	P50, P99 time.Duration

	// CPU is the CPU time (user + system) this process used from the first
	// submission until the last commit was seen: every node of a LocalNet and
	// the flood's own workers. CPUPerTx divides it by Committed.
	CPU time.Duration

	RejectReason string // the first rejection's reason, if any
	FailReason   string // the first failed tx's result code and log, if any
	// PreCheckBatches and PreCheckSigs are how many batches of mempool
	// signature checks the ledger nodes made during the flood, and how
	// many signatures they held (ledger.App.BatchStats; 0 for kvstore).
	PreCheckBatches, PreCheckSigs uint64

	// Lost are the txs CheckTx accepted (BroadcastTxSync returned code 0)
	// that no block held when the flood ended, in submission order.
	Lost []int
}

// Flood submits the txs round-robin across the nodes with BroadcastTxSync from
// Concurrency workers, records the submit time of each, and learns its commit time
// from the nodes' event buses (NewBlock events: one per block, carrying every tx and
// its result). It returns throughput and latency percentiles.
//
// No more txs are outstanding (accepted, not yet committed) than 3/4 of the smallest
// node mempool: the mempool gossips every tx to every node, and a mempool that fills
// up between a tx's CheckTx and its insertion drops it without telling the client.
//
// If the timeout or ctx ends the flood early, Flood returns what it measured so far
// together with an error.
func Flood(ctx context.Context, nodes []*chain.Node, c FloodConfig) (FloodResult, error) {
	c, window, err := c.checked(nodes)
	if err != nil {
		return FloodResult{}, err
	}
	send := make([]broadcaster, len(nodes))
	for i, n := range nodes {
		send[i] = n.Client()
	}
	tracker := func(txs [][]byte, onCommit func(int)) (*commitTracker, error) {
		return newCommitTracker(nodes, txs, onCommit)
	}
	return runFlood(ctx, send, tracker, window, c)
}

// broadcaster is the part of CometBFT's RPC client a flood submits with.
type broadcaster interface {
	BroadcastTxSync(ctx context.Context, tx types.Tx) (*ctypes.ResultBroadcastTx, error)
}

// runFlood is Flood to the nodes behind send, whose commits newTracker
// follows; c is checked.
func runFlood(ctx context.Context, send []broadcaster, newTracker func([][]byte, func(int)) (*commitTracker, error), window int, c FloodConfig) (FloodResult, error) {
	var err error
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()

	f := &flood{
		nodes:       send,
		cfg:         c,
		window:      make(chan struct{}, window),
		submittedAt: make([]time.Time, len(c.Txs)),
		answered:    make([]chan struct{}, len(c.Txs)),
		accepted:    make([]bool, len(c.Txs)),
	}
	for i := range f.answered {
		f.answered[i] = make(chan struct{})
	}
	f.tracker, err = newTracker(c.Txs, func(int) { f.release() })
	if err != nil {
		return FloodResult{}, err
	}
	defer f.tracker.close()

	if c.CPUProfile != "" {
		stop, err := startCPUProfile(c.CPUProfile)
		if err != nil {
			return FloodResult{}, err
		}
		defer stop()
	}
	cpuTime := c.CPUTime
	if cpuTime == nil {
		cpuTime = processCPU
	}
	cpu0 := cpuTime()
	f.submitAll(ctx)
	accepted := 0
	for _, ok := range f.accepted {
		if ok {
			accepted++
		}
	}
	waitErr := f.tracker.wait(ctx, accepted)
	res := f.result()
	res.CPU = cpuTime() - cpu0
	if waitErr == nil && res.Submitted < len(c.Txs) {
		waitErr = fmt.Errorf("bench: submitted %d of %d txs: %w", res.Submitted, len(c.Txs), ctx.Err())
	}
	return res, waitErr
}

// checked validates c, fills in defaults and returns the outstanding-tx window.
func (c FloodConfig) checked(nodes []*chain.Node) (FloodConfig, int, error) {
	switch {
	case len(nodes) == 0:
		return c, 0, errors.New("bench: Flood: no nodes")
	case len(c.Txs) == 0:
		return c, 0, errors.New("bench: Flood: no txs")
	case c.Rate < 0 || c.Concurrency < 0 || c.Timeout < 0 || c.Signers < 0:
		return c, 0, fmt.Errorf("bench: Flood: negative Rate (%d), Concurrency (%d), Timeout (%v) or Signers (%d)", c.Rate, c.Concurrency, c.Timeout, c.Signers)
	}
	window := 0
	for i, n := range nodes {
		if n == nil || !n.Running() {
			return c, 0, fmt.Errorf("bench: Flood: node %d is not running", i)
		}
		if w := floodWindow(n.Comet().Config().Mempool.Size); window == 0 || w < window {
			window = w
		}
	}
	return c.withDefaults(len(nodes)), window, nil
}

// floodWindow is the most txs outstanding for a node of mempoolSize.
func floodWindow(mempoolSize int) int {
	return max(mempoolSize*mempoolWindowNumerator/mempoolWindowDenominator, 1)
}

// withDefaults fills in c's zero fields for a flood of nodes nodes.
func (c FloodConfig) withDefaults(nodes int) FloodConfig {
	if c.Concurrency == 0 {
		c.Concurrency = defaultWorkersPerNode * nodes
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultFloodTimeout
	}
	return c
}

type flood struct {
	nodes   []broadcaster
	cfg     FloodConfig
	tracker *commitTracker
	window  chan struct{} // one token per outstanding tx

	// Written by the worker that owns tx i, read after all workers are done.
	submittedAt []time.Time
	accepted    []bool
	answered    []chan struct{} // closed when tx i has its answer (or never will)

	mu           sync.Mutex
	submitted    int
	rejected     int
	rejectReason string
}

// release returns a window token, if one is taken (a tx reported rejected may
// still commit, releasing twice).
func (f *flood) release() {
	select {
	case <-f.window:
	default:
	}
}

// submitAll feeds tx indices to the workers at the configured rate and returns when
// every tx has been submitted or ctx has ended.
func (f *flood) submitAll(ctx context.Context) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range f.cfg.Concurrency {
		wg.Go(func() {
			for i := range work {
				f.submit(ctx, i)
			}
		})
	}
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
feed:
	for i := range f.cfg.Txs {
		if f.cfg.Rate > 0 {
			due := start.Add(time.Duration(i) * time.Second / time.Duration(f.cfg.Rate))
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					break feed
				}
			}
		}
		// The window token is taken here, in submission order, not by the
		// workers: a worker blocked on a full window could otherwise be
		// overtaken by one holding a later tx of the same signer, which the
		// ledger refuses as a nonce gap.
		select {
		case f.window <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
		select {
		case work <- i:
		case <-ctx.Done():
			f.release()
			break feed
		}
	}
	close(work)
	wg.Wait()
}

// submit sends tx i to its node, retrying while the mempool is full; its
// window token is taken.
func (f *flood) submit(ctx context.Context, i int) {
	defer close(f.answered[i])
	if p := i - f.cfg.Signers; f.cfg.Signers > 0 && p >= 0 {
		select {
		case <-f.answered[p]:
		case <-ctx.Done():
			f.reject(fmt.Sprintf("tx %d: the flood ended before tx %d, its signer's previous, had an answer", i, p))
			return
		}
	}
	node := f.nodes[i%len(f.nodes)]
	f.submittedAt[i] = time.Now()
	f.mu.Lock()
	f.submitted++
	f.mu.Unlock()
	backoff := mempoolFullBackoffStart
	for {
		res, err := node.BroadcastTxSync(ctx, f.cfg.Txs[i])
		switch {
		case err == nil && res.Code == abci.CodeTypeOK:
			f.accepted[i] = true
			return
		case err == nil:
			f.reject(fmt.Sprintf("tx %d: CheckTx code %d: %s", i, res.Code, res.Log))
			return
		case mempoolFull(err):
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, mempoolFullBackoffLimit)
				continue
			case <-ctx.Done():
				f.reject(fmt.Sprintf("tx %d: mempool full until the flood ended", i))
				return
			}
		default:
			f.reject(fmt.Sprintf("tx %d: %v", i, err))
			return
		}
	}
}

// mempoolFull reports whether err says the node's mempool is full: the
// error itself from a node in this process, its text from one over RPC.
func mempoolFull(err error) bool {
	var full mempool.ErrMempoolIsFull
	return errors.As(err, &full) || strings.Contains(err.Error(), "mempool is full")
}

func (f *flood) reject(reason string) {
	f.release()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejected++
	if f.rejectReason == "" {
		f.rejectReason = reason
	}
}

// result computes the measurements; all workers have finished.
func (f *flood) result() FloodResult {
	f.mu.Lock()
	res := FloodResult{Submitted: f.submitted, Rejected: f.rejected, RejectReason: f.rejectReason}
	f.mu.Unlock()

	var first, last time.Time
	var latencies []time.Duration
	for i, sent := range f.submittedAt {
		if sent.IsZero() {
			continue
		}
		if first.IsZero() || sent.Before(first) {
			first = sent
		}
		if !f.accepted[i] {
			continue
		}
		at, code, log, ok := f.tracker.result(i)
		if !ok {
			res.Lost = append(res.Lost, i)
			continue
		}
		res.Committed++
		if code != abci.CodeTypeOK {
			res.Failed++
			if res.FailReason == "" {
				res.FailReason = fmt.Sprintf("tx %d: code %d: %s", i, code, log)
			}
		}
		if at.After(last) {
			last = at
		}
		latencies = append(latencies, at.Sub(sent))
	}
	if res.Committed > 0 {
		res.Duration = last.Sub(first)
		if res.Duration > 0 {
			res.TxPerSec = float64(res.Committed) / res.Duration.Seconds()
		}
		slices.Sort(latencies)
		res.P50 = percentile(latencies, 50)
		res.P99 = percentile(latencies, 99)
	}
	return res
}

// percentile returns the nearest-rank p-th percentile of sorted, which is not empty.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

// CPUPerTx is the process's CPU time per committed tx (0 if none committed).
func (r FloodResult) CPUPerTx() time.Duration {
	if r.Committed == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Committed)
}

// startCPUProfile starts a CPU profile into file; stop ends it. Beside
// it, file+".allocs-start" and file+".allocs" get the process's allocation
// profile at the start and the end, so that
//
//	go tool pprof -sample_index=alloc_space -diff_base F.allocs-start F.allocs
//
// shows what the flood allocated.
func startCPUProfile(file string) (stop func(), err error) {
	if err := writeAllocs(file + ".allocs-start"); err != nil {
		return nil, err
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		_ = writeAllocs(file + ".allocs") // best effort: the CPU profile is written
	}, nil
}

func writeAllocs(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("bench: allocation profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("bench: allocation profile: %w", err)
	}
	return nil
}

// processCPU returns the CPU time (user + system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
