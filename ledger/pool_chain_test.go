package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/mempool"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// TestChainCommitsEveryAdmittedTx floods a real 4-validator network with
// the txs of a few devices, each device's txs sent to its own node by
// several goroutines at once, each taking the next nonce and retrying
// while CheckTx says an earlier one is missing: CheckTx admits a device's
// nonces in order, and the mempool appends them in whatever order the
// goroutines get there, which is sometimes not nonce order (pool.go).
// Every admitted tx must commit, and succeed: each device's nonce reaches
// its last tx's. Before pool.go a device whose txs were appended out of
// order lost them (rechecks refused them, or a block failed one and the
// rechecks refused the rest), and its nonce stopped short.
func TestChainCommitsEveryAdmittedTx(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-validator network")
	}
	const devices, perDevice, senders = 8, 100, 8
	// More threads than cores: the OS then preempts a goroutine between
	// CheckTx and the mempool's append often enough that, before pool.go,
	// this test failed in 4 runs of 4 on a 2-core machine (1 in 4 with
	// the default GOMAXPROCS).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(16))
	admin := mustKey(t, identity.Ed25519)
	g := orgGenesis(admin, "acme")
	devs := make([]*identity.Key, devices)
	for i := range devs {
		devs[i] = mustKey(t, identity.Ed25519)
		g.Devices = append(g.Devices, GenesisDevice{ID: devs[i].ID(), Org: "acme", Class: "sensor"})
	}
	appState, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	var appsMu sync.Mutex
	apps := map[int]*App{}
	net, err := chain.StartLocalNet(chain.LocalNetConfig{
		Dir: t.TempDir(), Validators: 4, ChainID: testChain, FastBlocks: true, AppState: appState,
		NewApp: func(i int, home string) (abci.Application, error) {
			app, err := NewApp(Config{Dir: filepath.Join(home, "data", "ledger")})
			appsMu.Lock()
			apps[i] = app
			appsMu.Unlock()
			return app, err
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := net.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx := testutil.Context(t, 3*time.Minute)
	if err := net.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var outOfTurn atomic.Int64 // submissions refused because an earlier nonce was not in yet
	for d, dev := range devs {
		node := net.Node(d % 4)
		txs := make([][]byte, perDevice)
		for n := range txs {
			txs[n] = grantTx(t, dev, uint64(n+1), 1<<40)
		}
		var next atomic.Int64
		for range senders {
			wg.Go(func() {
				for n := next.Add(1); n <= perDevice; n = next.Add(1) {
					if err := submitInTurn(ctx, node, txs[n-1], &outOfTurn); err != nil {
						t.Errorf("device %d nonce %d: %v", d, n, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	appsMu.Lock()
	app := apps[0]
	appsMu.Unlock()
	short := func() string {
		st, err := app.View(0)
		if err != nil {
			return err.Error()
		}
		var behind []string
		for d, dev := range devs {
			if n, err := st.Nonce(dev.ID()); err != nil || n != perDevice {
				behind = append(behind, fmt.Sprintf("device %d at nonce %d (%v)", d, n, err))
			}
		}
		return strings.Join(behind, ", ")
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for short() != "" {
		select {
		case <-waitCtx.Done():
			t.Fatalf("every tx admitted, but after a minute %s; want every device at nonce %d", short(), perDevice)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Logf("%d txs committed; %d submissions refused for an earlier nonce not yet admitted", devices*perDevice, outOfTurn.Load())
}

// submitInTurn sends tx to node until CheckTx admits it, retrying while it
// is refused because the signer's previous nonce is not admitted yet (its
// sender is a goroutine behind this one) or the mempool is full.
func submitInTurn(ctx context.Context, node *chain.Node, tx []byte, outOfTurn *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		res, err := node.Client().BroadcastTxSync(ctx, tx)
		var full mempool.ErrMempoolIsFull
		switch {
		case err == nil && res.Code == uint32(record.CodeOK):
			return nil
		case err == nil && res.Code == uint32(record.CodeBadNonce) && strings.Contains(res.Log, "ahead"):
			outOfTurn.Add(1)
		case errors.As(err, &full):
		case err != nil:
			return err
		default:
			return fmt.Errorf("CheckTx code %d: %s", res.Code, res.Log)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not admitted (the previous nonce never was?): %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}
