package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
	"github.com/thingnet/thingnet/relay"
)

// Agreement workloads.
const (
	// AgreementReadings fires the thermostat example with proven readings:
	// each tx carries a signed reading and its inclusion proof, which the
	// ledger verifies before the transition (a command and a payment, or a
	// command alone).
	AgreementReadings = "readings"
	// AgreementCalls fires the data-sharing example's "pay": a credit
	// transfer, two state variables, a grant replacing the previous one.
	AgreementCalls = "calls"
)

// AgreementResult is the outcome of RunAgreementBlocks.
type AgreementResult struct {
	Workload    string  `json:"workload"`
	Transitions int     `json:"transitions"`
	PerBlock    int     `json:"per_block"`
	Seconds     float64 `json:"seconds"`    // FinalizeBlock + Commit of the measured blocks
	PerSecond   float64 `json:"per_second"` // transitions per second
}

func (r AgreementResult) String() string {
	return fmt.Sprintf("%s: %d transitions in blocks of %d: %.0f transitions/s (%.2f s of FinalizeBlock+Commit)",
		r.Workload, r.Transitions, r.PerBlock, r.PerSecond, r.Seconds)
}

// RunAgreementBlocks executes n agreement transitions (one per tx) in blocks
// of perBlock txs on an in-process ledger (state in dir), the way CometBFT
// drives it, and times block execution alone: signatures (batch-verified),
// reading proofs, CEL, effects, state writes and commits. Txs are signed in
// advance.
func RunAgreementBlocks(dir, workload string, n, perBlock int) (AgreementResult, error) {
	if n <= 0 || perBlock <= 0 {
		return AgreementResult{}, errors.New("bench: n and perBlock must be positive")
	}
	const chainID = "bench-agreements"
	keys := make([]*identity.Key, 6) // home admin, acme admin, sensor, cooler, gateway, validator
	for i := range keys {
		var err error
		if keys[i], err = identity.GenerateKey(identity.Ed25519); err != nil {
			return AgreementResult{}, err
		}
	}
	home, acme, sensor, cooler, gw, val := keys[0], keys[1], keys[2], keys[3], keys[4], keys[5]
	g := ledger.GenesisState{
		Orgs: []ledger.GenesisOrg{{ID: "home", Admins: []string{home.ID()}}, {ID: "acme", Admins: []string{acme.ID()}}},
		Devices: []ledger.GenesisDevice{{ID: sensor.ID(), Org: "home", Class: "sensor"}, {ID: cooler.ID(), Org: "acme", Class: "actuator"},
			{ID: gw.ID(), Org: "home", Class: record.ClassGateway}},
		Balances: []ledger.GenesisBalance{{Account: "org:home", Amount: 1 << 40}, {Account: "org:acme", Amount: 1 << 40}},
	}
	app, err := ledger.NewApp(ledger.Config{Dir: filepath.Join(dir, "ledger")})
	if err != nil {
		return AgreementResult{}, err
	}
	defer app.Close()
	raw, _ := json.Marshal(g)
	ctx := context.Background()
	if _, err := app.InitChain(ctx, &abci.RequestInitChain{ChainId: chainID, AppStateBytes: raw, InitialHeight: 1,
		Validators: []abci.ValidatorUpdate{abci.Ed25519ValidatorUpdate(val.Public().Bytes, 10)}}); err != nil {
		return AgreementResult{}, err
	}
	height := int64(0)
	run := func(txs [][]byte) ([]*abci.ExecTxResult, error) {
		height++
		res, err := app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: height, Txs: txs})
		if err != nil {
			return nil, err
		}
		_, err = app.Commit(ctx, &abci.RequestCommit{})
		return res.TxResults, err
	}
	nonces := map[string]uint64{}
	sign := func(k *identity.Key, m record.Msg) []byte {
		nonces[k.ID()]++
		tx, err := record.NewTx(k, "", chainID, nonces[k.ID()], 1<<40, m)
		if err != nil {
			panic(err) // our own well-formed messages always encode
		}
		return tx
	}
	setup := func(key *identity.Key, m record.Msg) error {
		res, err := run([][]byte{sign(key, m)})
		if err != nil {
			return err
		}
		if res[0].Code != 0 {
			return fmt.Errorf("bench setup %s: %s", m.Kind(), res[0].Log)
		}
		return nil
	}
	var calls [][]byte
	switch workload {
	case AgreementReadings:
		src, err := exampleAgreement("thermostat")
		if err != nil {
			return AgreementResult{}, err
		}
		if err := setup(home, &record.AgreementDeploy{Source: src, Parties: map[string]string{
			"sensor": "device:" + sensor.ID(), "cooler": "device:" + cooler.ID(), "buyer": "org:home", "seller": "org:acme"}}); err != nil {
			return AgreementResult{}, err
		}
		if err := setup(acme, &record.AgreementAccept{ID: 1}); err != nil {
			return AgreementResult{}, err
		}
		evidence, anchor, err := provenReadings(filepath.Join(dir, "log"), sensor, gw.ID(), n)
		if err != nil {
			return AgreementResult{}, err
		}
		if err := setup(gw, anchor); err != nil {
			return AgreementResult{}, err
		}
		relayers, err := relayerKeys(64)
		if err != nil {
			return AgreementResult{}, err
		}
		for i, ev := range evidence {
			t := "hot"
			if i%2 == 1 {
				t = "cool"
			}
			calls = append(calls, sign(relayers[i%len(relayers)], &record.AgreementCall{ID: 1, Transition: t, Reading: ev}))
		}
	case AgreementCalls:
		src, err := exampleAgreement("datasharing")
		if err != nil {
			return AgreementResult{}, err
		}
		if err := setup(home, &record.AgreementDeploy{Source: src, Parties: map[string]string{
			"owner": "org:home", "reader": "org:acme", "sensor": "device:" + sensor.ID()}}); err != nil {
			return AgreementResult{}, err
		}
		if err := setup(acme, &record.AgreementAccept{ID: 1}); err != nil {
			return AgreementResult{}, err
		}
		for range n {
			calls = append(calls, sign(acme, &record.AgreementCall{ID: 1, Transition: "pay", Args: map[string]any{"days": int64(1)}}))
		}
	default:
		return AgreementResult{}, fmt.Errorf("bench: workload %q is not %s or %s", workload, AgreementReadings, AgreementCalls)
	}
	var took time.Duration
	for len(calls) > 0 {
		k := min(perBlock, len(calls))
		start := time.Now()
		res, err := run(calls[:k])
		took += time.Since(start)
		if err != nil {
			return AgreementResult{}, err
		}
		for i, r := range res {
			if r.Code != 0 {
				return AgreementResult{}, fmt.Errorf("bench: transition refused in block %d tx %d: %s", height, i, r.Log)
			}
		}
		calls = calls[k:]
	}
	return AgreementResult{Workload: workload, Transitions: n, PerBlock: perBlock, Seconds: took.Seconds(), PerSecond: float64(n) / took.Seconds()}, nil
}

func relayerKeys(n int) ([]*identity.Key, error) {
	out := make([]*identity.Key, n)
	for i := range out {
		var err error
		if out[i], err = identity.GenerateKey(identity.Ed25519); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// exampleAgreement reads examples/agreements/NAME.yaml from the module root.
func exampleAgreement(name string) ([]byte, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "examples", "agreements", name+".yaml"))
		if err == nil {
			return b, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, fmt.Errorf("bench: examples/agreements/%s.yaml not found above the working directory", name)
		}
		dir = parent
	}
}

// provenReadings appends n signed readings of sensor (alternately hot and
// cool) to a data log and returns each one's evidence against the log's
// root, with the anchor tx to record that root.
func provenReadings(dir string, sensor *identity.Key, gateway string, n int) ([]*record.ReadingEvidence, *record.DataAnchor, error) {
	l, err := datalog.Open(datalog.Config{Dir: dir})
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	envs := make([][]byte, n)
	for i := range envs {
		v := 35.0
		if i%2 == 1 {
			v = 20
		}
		if envs[i], err = reading.Sign(sensor, sensor.ID(), reading.Reading{Seq: uint64(i + 1), Time: time.UnixMilli(1_700_000_000_000 + int64(i)), ContentType: "temperature/celsius", Value: &v}); err != nil {
			return nil, nil, err
		}
	}
	if _, err := l.Append(envs); err != nil {
		return nil, nil, err
	}
	size, root := l.Root()
	out := make([]*record.ReadingEvidence, n)
	for i := range envs {
		p, err := l.InclusionProof(uint64(i), size)
		if err != nil {
			return nil, nil, err
		}
		ev := &record.ReadingEvidence{Gateway: gateway, Index: uint64(i), Size: size, Envelope: envs[i]}
		for _, h := range p {
			ev.Inclusion = append(ev.Inclusion, h[:])
		}
		out[i] = ev
	}
	return out, &record.DataAnchor{Size: size, Root: root[:]}, nil
}

// LatencyConfig says how RunReadingToCommand measures.
type LatencyConfig struct {
	Validators int
	Samples    int
	// Relay: a relayer (package relay, polling every 20 ms) finds each
	// reading and sends the call, as a deployment would run it; otherwise
	// the harness relays each reading itself the moment it is anchored.
	Relay bool
}

// LatencyResult is the outcome of RunReadingToCommand.
type LatencyResult struct {
	Relay      bool            `json:"relay"`
	Validators int             `json:"validators"`
	Samples    int             `json:"samples"`
	P50, P99   time.Duration   `json:"-"`
	Anchor50   time.Duration   `json:"-"` // reading stored -> covered by an anchor
	Call50     time.Duration   `json:"-"` // anchored -> agreement.call committed
	All        []time.Duration `json:"-"` // sorted
}

func (r LatencyResult) String() string {
	if r.Relay {
		return fmt.Sprintf("reading -> command through a relayer, %d validators, %d samples: p50 %v, p99 %v",
			r.Validators, r.Samples, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond))
	}
	return fmt.Sprintf("reading -> command, %d validators, %d samples: p50 %v, p99 %v (p50 of its parts: anchoring %v, the call's commit %v)",
		r.Validators, r.Samples, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Anchor50.Round(time.Millisecond), r.Call50.Round(time.Millisecond))
}

// RunReadingToCommand measures, on a devnet of the given size in home, the
// time from a sensor's reading reaching a gateway to the command that the
// thermostat agreement issues being readable by the actuator through
// another node's API: the gateway anchors the reading, a relayer fetches
// its proof and submits agreement.call, the block commits, the actuator
// polls its commands. Samples run one after the other.
func RunReadingToCommand(ctx context.Context, home string, lc LatencyConfig) (LatencyResult, error) {
	validators, samples := lc.Validators, lc.Samples
	if validators <= 0 || samples <= 0 {
		return LatencyResult{}, errors.New("bench: validators and samples must be positive")
	}
	base, err := chain.FreePortBase(validators)
	if err != nil {
		return LatencyResult{}, err
	}
	d, err := devnet.Start(devnet.Config{Home: home, Validators: validators, BasePort: base, FastBlocks: true, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return LatencyResult{}, err
	}
	defer d.Stop()
	if err := d.WaitForHeight(ctx, 2); err != nil {
		return LatencyResult{}, err
	}
	ks := devnet.Keystore(home)
	admin, err := ks.Load(devnet.DemoAdminKey, nil)
	if err != nil {
		return LatencyResult{}, err
	}
	c := client.New(d.APIURL(0))
	far := client.New(d.APIURL(validators - 1)) // the actuator reads through the last node
	must := func(key *identity.Key, m record.Msg) error {
		if _, err := c.Send(ctx, key, "", m, true); err != nil {
			return fmt.Errorf("bench setup %s: %w", m.Kind(), err)
		}
		return nil
	}
	devs := make([]*identity.Key, 2)
	for i := range devs {
		if devs[i], err = identity.GenerateKey(identity.Ed25519); err != nil {
			return LatencyResult{}, err
		}
		proof, _ := devs[i].Sign(record.PossessionMessage(d.ChainID(), devnet.DemoOrg, devs[i].ID()))
		if err := must(admin, &record.DeviceRegister{Org: devnet.DemoOrg, Device: devs[i].ID(), Proof: proof}); err != nil {
			return LatencyResult{}, err
		}
	}
	sensor, cooler := devs[0], devs[1]
	mint := &record.CreditMint{To: "org:demo", Amount: 1 << 30, Seq: 1}
	for i := range validators {
		pub, sig, err := chain.SignWithValidatorKey(d.NodeHome(i), record.CreditMintMessage(d.ChainID(), 1, mint.To, mint.Amount))
		if err != nil {
			return LatencyResult{}, err
		}
		mint.Approvals = append(mint.Approvals, record.Approval{Validator: pub, Signature: sig})
	}
	if err := must(admin, mint); err != nil {
		return LatencyResult{}, err
	}
	src, err := exampleAgreement("thermostat")
	if err != nil {
		return LatencyResult{}, err
	}
	// Buyer and seller are both demo here: one deploy activates it.
	if err := must(admin, &record.AgreementDeploy{Source: src, Parties: map[string]string{
		"sensor": "device:" + sensor.ID(), "cooler": "device:" + cooler.ID(), "buyer": "org:demo", "seller": "org:demo"}}); err != nil {
		return LatencyResult{}, err
	}
	// The relayer must read the sensor's readings to relay them: it runs
	// with the admin's key (a read grantee's would do as well).
	relayer := admin
	gw := d.Gateway(0)
	var res LatencyResult
	res.Validators, res.Samples, res.Relay = validators, samples, lc.Relay
	if lc.Relay {
		r, err := relay.New(relay.Config{Client: c, Key: relayer, Agreements: []uint64{1}, Poll: 20 * time.Millisecond})
		if err != nil {
			return res, err
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		defer func() { stop(); <-done }()
	}
	var anchors, callsT []time.Duration
	var lastCmd uint64
	for i := range samples {
		v := 35.0
		t := "hot"
		if i%2 == 1 {
			v, t = 20, "cool"
		}
		raw, err := reading.Sign(sensor, sensor.ID(), reading.Reading{Seq: uint64(i + 1), Time: time.UnixMilli(1_700_000_000_000 + int64(i)), ContentType: "temperature/celsius", Value: &v})
		if err != nil {
			return res, err
		}
		start := time.Now()
		idx, err := gw.IngestIndex(ctx, sensor.ID(), raw, "bench")
		if err != nil {
			return res, err
		}
		anchored, called := start, start
		if !lc.Relay {
			if anchored, called, err = relayOnce(ctx, c, d, relayer, idx, t); err != nil {
				return res, fmt.Errorf("sample %d: %w", i, err)
			}
		}
		for {
			cmds, err := far.Commands(ctx, cooler.ID(), lastCmd)
			if err != nil {
				return res, err
			}
			if len(cmds) > 0 {
				lastCmd = cmds[len(cmds)-1].ID
				break
			}
			if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
				return res, err
			}
		}
		res.All = append(res.All, time.Since(start))
		anchors = append(anchors, anchored.Sub(start))
		callsT = append(callsT, called.Sub(anchored))
	}
	for _, ds := range [][]time.Duration{res.All, anchors, callsT} {
		slices.Sort(ds)
	}
	res.P50, res.P99 = percentile(res.All, 50), percentile(res.All, 99)
	res.Anchor50, res.Call50 = percentile(anchors, 50), percentile(callsT, 50)
	return res, nil
}

// relayOnce waits until the reading at idx is anchored and sends the call,
// returning when it was anchored and when the call committed.
func relayOnce(ctx context.Context, c *client.Client, d *devnet.Devnet, relayer *identity.Key, idx uint64, transition string) (anchored, called time.Time, err error) {
	gw := d.Gateway(0)
	var p *proof.Reading
	for {
		p, err = gw.Prove(d.App(0), idx)
		if err == nil {
			break
		}
		if !errors.Is(err, proof.ErrNotAnchored) {
			return anchored, called, err
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return anchored, called, err
		}
	}
	anchored = time.Now()
	if _, err := c.Send(ctx, relayer, "", &record.AgreementCall{ID: 1, Transition: transition, Reading: p.Evidence(0)}, true); err != nil {
		return anchored, called, err
	}
	return anchored, time.Now(), nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
