package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/cometbft/cometbft/types"

	"github.com/thingnet/thingnet/chain"
)

// Remote is a network this process did not start: validators in other
// processes (or machines), reached over CometBFT's RPC at Addrs
// ("http://host:26657"). If PIDs name the validators' processes on this
// machine, a flood's CPU is theirs (ProcessesCPU) instead of this
// process's. MempoolSize is the nodes' mempool size (default
// chain.DefaultMempoolSize), which bounds the txs a flood keeps
// outstanding.
type Remote struct {
	Addrs       []string
	PIDs        []int
	MempoolSize int
}

// connect returns an RPC client per address, with its websocket started,
// once every node has committed height 2 (is up and in consensus).
func (r Remote) connect(ctx context.Context) ([]*rpchttp.HTTP, error) {
	if len(r.Addrs) == 0 {
		return nil, errors.New("bench: no remote node addresses")
	}
	var cs []*rpchttp.HTTP
	for _, a := range r.Addrs {
		c, err := rpchttp.New(a, "/websocket")
		if err != nil {
			return nil, fmt.Errorf("bench: node %s: %w", a, err)
		}
		cs = append(cs, c)
	}
	readyCtx, cancel := context.WithTimeout(ctx, netReadyTimeout)
	defer cancel()
	if err := waitForHeight(readyCtx, cs, 2); err != nil {
		return nil, err
	}
	for i, c := range cs {
		if err := c.Start(); err != nil {
			stopClients(cs[:i])
			return nil, fmt.Errorf("bench: node %s: websocket: %w", r.Addrs[i], err)
		}
	}
	return cs, nil
}

func stopClients(cs []*rpchttp.HTTP) {
	for _, c := range cs {
		_ = c.Stop()
	}
}

// waitForHeight waits until every node has committed height h.
func waitForHeight(ctx context.Context, cs []*rpchttp.HTTP, h int64) error {
	for i, c := range cs {
		for {
			st, err := c.Status(ctx)
			if err == nil && st.SyncInfo.LatestBlockHeight >= h {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("bench: node %d not at height %d (last error: %v): %w", i, h, err, ctx.Err())
			case <-time.After(100 * time.Millisecond): // polling a remote node: no event to wait on before its websocket is up
			}
		}
	}
	return nil
}

// Flood is Flood against the remote nodes: commits are learned from their
// NewBlock events over the websocket.
func (r Remote) Flood(ctx context.Context, c FloodConfig) (FloodResult, error) {
	cs, err := r.connect(ctx)
	if err != nil {
		return FloodResult{}, err
	}
	defer stopClients(cs)
	return r.flood(ctx, cs, c)
}

func (r Remote) flood(ctx context.Context, cs []*rpchttp.HTTP, c FloodConfig) (FloodResult, error) {
	if len(c.Txs) == 0 {
		return FloodResult{}, errors.New("bench: Flood: no txs")
	}
	size := r.MempoolSize
	if size <= 0 {
		size = chain.DefaultMempoolSize
	}
	c = c.withDefaults(len(cs))
	if len(r.PIDs) > 0 && c.CPUTime == nil {
		pids := r.PIDs
		c.CPUTime = func() time.Duration { return ProcessesCPU(pids) }
	}
	send := make([]broadcaster, len(cs))
	for i, cl := range cs {
		send[i] = cl
	}
	tracker := func(txs [][]byte, onCommit func(int)) (*commitTracker, error) {
		return newRemoteCommitTracker(cs, txs, onCommit)
	}
	return runFlood(ctx, send, tracker, floodWindow(size), c)
}

// newRemoteCommitTracker follows the NewBlock events of remote nodes.
func newRemoteCommitTracker(cs []*rpchttp.HTTP, txs [][]byte, onCommit func(int)) (*commitTracker, error) {
	t, err := newTracker(txs, onCommit)
	if err != nil {
		return nil, err
	}
	for i, c := range cs {
		out, err := c.Subscribe(context.Background(), t.subscriber, types.EventQueryNewBlock.String(), blockEventCapacity)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("bench: subscribe to new blocks on node %d: %w", i, err)
		}
		t.closers = append(t.closers, func() { _ = c.UnsubscribeAll(context.Background(), t.subscriber) })
		t.live++
		t.wg.Go(func() {
			for {
				select {
				case ev, ok := <-out:
					if !ok {
						t.mu.Lock()
						t.live--
						t.lastErr = fmt.Errorf("node %d's websocket subscription ended", i)
						t.mu.Unlock()
						t.signal()
						return
					}
					if b, ok := ev.Data.(types.EventDataNewBlock); ok {
						t.record(b, time.Now())
					}
				case <-t.stop:
					return
				}
			}
		})
	}
	return t, nil
}

// Ledger registers w's devices through the first node, then floods the
// network with w's txs at rate tx/s (0: as fast as accepted). The
// network's genesis must hold w's organisation (LedgerWorkload.Admin).
func (r Remote) Ledger(ctx context.Context, w *LedgerWorkload, rate int) (FloodResult, error) {
	cs, err := r.connect(ctx)
	if err != nil {
		return FloodResult{}, err
	}
	defer stopClients(cs)
	return w.run(ctx, rate, func(ctx context.Context, register bool, c FloodConfig) (FloodResult, error) {
		if register {
			c.CPUTime = processCPU // not the validators': the registrations are not measured
			return r.flood(ctx, cs[:1], c)
		}
		return r.flood(ctx, cs, c)
	})
}

// KVStore floods a remote network of CometBFT's kvstore with txs txs of
// KVStoreTxSize bytes, as RunKVStoreBaseline does.
func (r Remote) KVStore(ctx context.Context, txs, rate int) (FloodResult, error) {
	return r.Flood(ctx, FloodConfig{Txs: KVStoreTxs(txs, KVStoreTxSize), Rate: rate, Timeout: DefaultFloodTimeout + time.Duration(txs)*time.Millisecond})
}

// ProcessesCPU returns the CPU time (user + system, from /proc/PID/stat)
// the processes have used; a process that cannot be read counts 0.
func ProcessesCPU(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may
		// hold spaces: state is field 3, utime 14 and stime 15.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * time.Second / clockTicks
	}
	return total
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// SaveLedgerWorkload writes w to file, for Remote.Ledger in another run
// (the network's genesis needs its organisation first).
func SaveLedgerWorkload(file string, w *LedgerWorkload) error {
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

// LoadLedgerWorkload reads a workload SaveLedgerWorkload wrote.
func LoadLedgerWorkload(file string) (*LedgerWorkload, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var w LedgerWorkload
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("bench: workload %s: %w", file, err)
	}
	if w.ChainID == "" || len(w.Register) != LedgerDevices || len(w.Flood) == 0 || w.Admin == "" {
		return nil, fmt.Errorf("bench: workload %s: not a ledger workload (chain id, %d registrations, flood txs and admin wanted)", file, LedgerDevices)
	}
	return &w, nil
}
