package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// LedgerDevices is how many devices sign the ledger flood's transactions;
// a multiple of BaselineValidators, so each device's txs go to one node, in
// nonce order.
const LedgerDevices = 400

const benchOrg = "bench"

// LedgerWorkload is a ledger flood prepared in advance: the devices'
// registrations, and the device-signed transactions to flood with.
type LedgerWorkload struct {
	ChainID  string
	Admin    string // the bench organisation's admin, who registers the devices
	Genesis  json.RawMessage
	Register [][]byte // admin-signed device.register, nonces 1..N: submit in order to one node
	Flood    [][]byte // device-signed grant.add, in rounds: tx i is by device i%LedgerDevices
}

// NewLedgerWorkload signs n flood txs (rounded up to whole rounds) by
// LedgerDevices Ed25519 devices, each a grant.add of its own readings to the
// bench organisation: a device-signed tx that writes a grant record, its index
// entry, the grant counter and the signer's nonce.
func NewLedgerWorkload(chainID string, n int) (*LedgerWorkload, error) {
	admin, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		return nil, err
	}
	g, err := json.Marshal(ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: benchOrg, Admins: []string{admin.ID()}}}})
	if err != nil {
		return nil, err
	}
	w := &LedgerWorkload{ChainID: chainID, Admin: admin.ID(), Genesis: g}
	const expiry = 1 << 40
	devs := make([]*identity.Key, LedgerDevices)
	for i := range devs {
		if devs[i], err = identity.GenerateKey(identity.Ed25519); err != nil {
			return nil, err
		}
		proof, err := devs[i].Sign(record.PossessionMessage(chainID, benchOrg, devs[i].ID()))
		if err != nil {
			return nil, err
		}
		tx, err := record.NewTx(admin, "", chainID, uint64(i+1), expiry, &record.DeviceRegister{Org: benchOrg, Device: devs[i].ID(), Class: "sensor", Proof: proof})
		if err != nil {
			return nil, err
		}
		w.Register = append(w.Register, tx)
	}
	rounds := (n + LedgerDevices - 1) / LedgerDevices
	for r := range rounds {
		for _, d := range devs {
			tx, err := record.NewTx(d, "", chainID, uint64(r+1), expiry, &record.GrantAdd{
				Grantor: "device:" + d.ID(), Subject: "org:" + benchOrg, Action: "read", Resource: "device:" + d.ID() + "/readings",
			})
			if err != nil {
				return nil, err
			}
			w.Flood = append(w.Flood, tx)
		}
	}
	return w, nil
}

// RunLedger measures the thingnet ledger the way RunKVStoreBaseline
// measures bare CometBFT: BaselineValidators validators on 127.0.0.1
// (FastBlocks), the ledger application with on-disk state, flooded with w's
// device-signed transactions at rate tx/s (0: as fast as accepted). The
// devices are registered first, outside the measurement.
func RunLedger(ctx context.Context, dir string, w *LedgerWorkload, rate int) (FloodResult, error) {
	return runLedgerNet(ctx, dir, w, rate, "", ledger.Config{})
}

// runLedgerNet is RunLedger, writing a CPU profile of the flood to profile
// if it is not "", the nodes' ledgers configured as tune's PreCheckBatch
// and PreCheckWait say.
func runLedgerNet(ctx context.Context, dir string, w *LedgerWorkload, rate int, profile string, tune ledger.Config) (FloodResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return FloodResult{}, fmt.Errorf("bench: %w", err)
	}
	home, err := os.MkdirTemp(dir, "ledger-")
	if err != nil {
		return FloodResult{}, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(home)
	apps := make([]*ledger.App, BaselineValidators)
	net, err := chain.StartLocalNet(chain.LocalNetConfig{
		Dir: home, Validators: BaselineValidators, ChainID: w.ChainID, FastBlocks: true, AppState: w.Genesis,
		NewApp: func(i int, nodeHome string) (abci.Application, error) {
			app, err := ledger.NewApp(ledger.Config{Dir: filepath.Join(nodeHome, "data", "ledger"), PreCheckBatch: tune.PreCheckBatch, PreCheckWait: tune.PreCheckWait})
			if err == nil && i < len(apps) {
				apps[i] = app
			}
			return app, err
		},
	}, nil)
	if err != nil {
		return FloodResult{}, err
	}
	res, err := runLedger(ctx, net, w, rate, profile, apps)
	return res, errors.Join(err, net.Stop())
}

func runLedger(ctx context.Context, net *chain.LocalNet, w *LedgerWorkload, rate int, profile string, apps []*ledger.App) (FloodResult, error) {
	readyCtx, cancel := context.WithTimeout(ctx, netReadyTimeout)
	defer cancel()
	if err := net.WaitForHeight(readyCtx, 2); err != nil {
		return FloodResult{}, fmt.Errorf("bench: ledger net not producing blocks: %w", err)
	}
	return w.run(ctx, rate, func(ctx context.Context, register bool, c FloodConfig) (FloodResult, error) {
		if register {
			return Flood(ctx, net.Nodes()[:1], c)
		}
		c.CPUProfile = profile
		batches0, sigs0 := batchStats(apps)
		res, err := Flood(ctx, net.Nodes(), c)
		batches, sigs := batchStats(apps)
		res.PreCheckBatches, res.PreCheckSigs = batches-batches0, sigs-sigs0
		return res, err
	})
}

// run registers w's devices, in nonce order through one node, waits
// until they are committed, then floods w's txs at rate tx/s; flood
// floods one node for the registrations, all for the rest.
func (w *LedgerWorkload) run(ctx context.Context, rate int, flood func(ctx context.Context, register bool, c FloodConfig) (FloodResult, error)) (FloodResult, error) {
	reg, err := flood(ctx, true, FloodConfig{Txs: w.Register, Concurrency: 1, Timeout: 2 * time.Minute})
	if err != nil {
		return FloodResult{}, fmt.Errorf("bench: registering devices: %w", err)
	}
	if reg.Committed != len(w.Register) || reg.Failed != 0 {
		return FloodResult{}, fmt.Errorf("bench: registering devices: %d of %d committed, %d failed (%s%s)", reg.Committed, len(w.Register), reg.Failed, reg.RejectReason, reg.FailReason)
	}
	res, err := flood(ctx, false, FloodConfig{Txs: w.Flood, Signers: LedgerDevices, Rate: rate, Timeout: DefaultFloodTimeout + time.Duration(len(w.Flood))*time.Millisecond})
	if len(res.Lost) > 0 {
		err = fmt.Errorf("%w; accepted, never committed: %s", err, w.describe(res.Lost))
	}
	return res, err
}

// batchStats sums the apps' PreCheckTx batch counts (ledger.App.BatchStats).
func batchStats(apps []*ledger.App) (batches, sigs uint64) {
	for _, a := range apps {
		if a != nil {
			b, s := a.BatchStats()
			batches, sigs = batches+b, sigs+s
		}
	}
	return batches, sigs
}

// describe names flood txs by signer and nonce, at most the first ten.
func (w *LedgerWorkload) describe(txs []int) string {
	var b strings.Builder
	for k, i := range txs {
		if k == 10 {
			fmt.Fprintf(&b, ", and %d more", len(txs)-k)
			break
		}
		if k > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "tx %d (device %d, nonce %d)", i, i%LedgerDevices, i/LedgerDevices+1)
	}
	return b.String()
}
