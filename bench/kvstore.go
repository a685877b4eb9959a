package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/thingnet/thingnet/chain"
)

// KVStoreTxSize is the transaction size of the baseline, as in DESIGN.md.
const KVStoreTxSize = 150

// KVStoreTxs returns n distinct "key=value" transactions for CometBFT's kvstore, each
// size bytes long (or just long enough for its key, if size is smaller). Keys carry a
// random tag, so that txs from two calls never collide in a mempool cache.
func KVStoreTxs(n int, size int) [][]byte {
	tag := rand.Text()[:10] // base32: letters and digits, never '=' or ':'
	txs := make([][]byte, n)
	for i := range txs {
		key := "bench-" + tag + "-" + strconv.Itoa(i)
		pad := max(size-len(key)-1, 1)
		tx := make([]byte, 0, len(key)+1+pad)
		tx = append(tx, key...)
		tx = append(tx, '=')
		tx = append(tx, bytes.Repeat([]byte{'v'}, pad)...)
		txs[i] = tx
	}
	return txs
}

// BaselineValidators is the size of the baseline network.
const BaselineValidators = 4

// RunKVStoreBaseline measures bare CometBFT: BaselineValidators validators on
// 127.0.0.1 (chain.LocalNet, FastBlocks profile) running the in-memory kvstore, flooded
// with txs transactions of KVStoreTxSize bytes, at rate tx/s (0: as fast as they are
// accepted). The network lives in a fresh directory under dir, removed afterwards.
func RunKVStoreBaseline(ctx context.Context, dir string, txs, rate int) (FloodResult, error) {
	return runKVStore(ctx, dir, txs, rate, "")
}

// runKVStore is RunKVStoreBaseline, writing a CPU profile of the flood to
// profile if it is not "".
func runKVStore(ctx context.Context, dir string, txs, rate int, profile string) (FloodResult, error) {
	if txs < 1 {
		return FloodResult{}, fmt.Errorf("bench: RunKVStoreBaseline: %d txs", txs)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return FloodResult{}, fmt.Errorf("bench: %w", err)
	}
	home, err := os.MkdirTemp(dir, "kvstore-baseline-")
	if err != nil {
		return FloodResult{}, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(home)

	net, err := chain.StartLocalNet(chain.LocalNetConfig{
		Dir:        home,
		Validators: BaselineValidators,
		ChainID:    "kvstore-baseline",
		FastBlocks: true,
		NewApp: func(int, string) (abci.Application, error) {
			return kvstore.NewInMemoryApplication(), nil
		},
	}, nil)
	if err != nil {
		return FloodResult{}, err
	}
	res, err := floodLocalNet(ctx, net, FloodConfig{
		Txs:        KVStoreTxs(txs, KVStoreTxSize),
		Rate:       rate,
		Timeout:    DefaultFloodTimeout + time.Duration(txs)*time.Millisecond,
		CPUProfile: profile,
	})
	return res, errors.Join(err, net.Stop())
}

// netReadyTimeout bounds the wait for a new LocalNet to commit its first blocks.
const netReadyTimeout = time.Minute

// floodLocalNet waits until every node of net has committed a block after the first
// (so all are connected and in consensus), then floods it.
func floodLocalNet(ctx context.Context, net *chain.LocalNet, c FloodConfig) (FloodResult, error) {
	readyCtx, cancel := context.WithTimeout(ctx, netReadyTimeout)
	defer cancel()
	if err := net.WaitForHeight(readyCtx, 2); err != nil {
		return FloodResult{}, fmt.Errorf("bench: local net not producing blocks: %w", err)
	}
	return Flood(ctx, net.Nodes(), c)
}
