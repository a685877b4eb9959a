// Package agreements_test runs the example agreements end to end on a
// devnet: real CometBFT, the gateway's anchored data log, the API.
package agreements_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// net is the devnet the example tests share, with its keys.
type net struct {
	t      *testing.T
	ctx    context.Context
	d      *devnet.Devnet
	c      *client.Client
	admin  *identity.Key // demo's admin
	acme   *identity.Key // acme's admin
	gw     *identity.Key // node 0's gateway
	nextAg uint64
}

func start(t *testing.T) *net {
	home := t.TempDir()
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	lvl := slog.LevelWarn
	if testing.Verbose() {
		lvl = slog.LevelInfo
	}
	d, err := devnet.Start(devnet.Config{Home: home, Validators: 4, BasePort: base, FastBlocks: true, NoSync: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	n := &net{t: t, ctx: ctx, d: d, c: client.New(d.APIURL(0))}
	ks := devnet.Keystore(home)
	if n.admin, err = ks.Load(devnet.DemoAdminKey, nil); err != nil {
		t.Fatal(err)
	}
	if n.gw, err = ks.Load(devnet.GatewayKey(0), nil); err != nil {
		t.Fatal(err)
	}
	n.acme, _ = identity.GenerateKey(identity.Ed25519)
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	n.must(n.acme, &record.OrgCreate{ID: "acme", Name: "Acme Cooling"})
	// Credits by governance: three of the four validators approve a mint to demo.
	mint := &record.CreditMint{To: "org:demo", Amount: 10_000, Seq: 1}
	for i := range 3 {
		pub, sig, err := chain.SignWithValidatorKey(d.NodeHome(i), record.CreditMintMessage(d.ChainID(), 1, mint.To, mint.Amount))
		if err != nil {
			t.Fatal(err)
		}
		mint.Approvals = append(mint.Approvals, record.Approval{Validator: pub, Signature: sig})
	}
	n.must(n.admin, mint)
	return n
}

func (n *net) send(key *identity.Key, m record.Msg) (*client.SubmitResult, error) {
	return n.c.Send(n.ctx, key, "", m, true)
}

func (n *net) must(key *identity.Key, m record.Msg) *client.SubmitResult {
	n.t.Helper()
	res, err := n.send(key, m)
	if err != nil {
		n.t.Fatalf("%s: %v", m.Kind(), err)
	}
	return res
}

func (n *net) refused(key *identity.Key, m record.Msg, code string) {
	n.t.Helper()
	_, err := n.send(key, m)
	var e *client.Error
	if !errors.As(err, &e) || e.Code != code {
		n.t.Fatalf("%s: %v; want %s", m.Kind(), err, code)
	}
}

func (n *net) register(admin *identity.Key, org, class string) *identity.Key {
	n.t.Helper()
	dev, _ := identity.GenerateKey(identity.Ed25519)
	proof, _ := dev.Sign(record.PossessionMessage(n.d.ChainID(), org, dev.ID()))
	n.must(admin, &record.DeviceRegister{Org: org, Device: dev.ID(), Class: class, Proof: proof})
	return dev
}

func (n *net) deploy(key *identity.Key, name string, parties map[string]string) uint64 {
	n.t.Helper()
	src, err := os.ReadFile(filepath.Join(name + ".yaml"))
	if err != nil {
		n.t.Fatal(err)
	}
	n.must(key, &record.AgreementDeploy{Source: src, Parties: parties})
	n.nextAg++
	a, err := n.c.Agreement(n.ctx, n.nextAg)
	if err != nil || a.Name != name {
		n.t.Fatalf("agreement %d after deploying %s: %+v, %v", n.nextAg, name, a, err)
	}
	return n.nextAg
}

func (n *net) agreement(id uint64) *client.AgreementView {
	n.t.Helper()
	a, err := n.c.Agreement(n.ctx, id)
	if err != nil {
		n.t.Fatal(err)
	}
	return a
}

func (n *net) balance(acct string) uint64 {
	n.t.Helper()
	b, err := n.c.Balance(n.ctx, acct)
	if err != nil {
		n.t.Fatal(err)
	}
	return b
}

// waitUntil polls cond every block or so.
func (n *net) waitUntil(what string, cond func() bool) {
	n.t.Helper()
	for !cond() {
		select {
		case <-n.ctx.Done():
			n.t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// proveReading stores a signed reading in node 0's gateway and waits until
// an anchor covers it; it returns the evidence an agreement.call carries.
func (n *net) proveReading(dev *identity.Key, seq uint64, v float64) *record.ReadingEvidence {
	n.t.Helper()
	raw, err := reading.Sign(dev, dev.ID(), reading.Reading{Seq: seq, Time: time.UnixMilli(1_700_000_000_000 + int64(seq)), ContentType: "temperature/celsius", Value: &v})
	if err != nil {
		n.t.Fatal(err)
	}
	gw := n.d.Gateway(0)
	idx, err := gw.IngestIndex(n.ctx, dev.ID(), raw, "test")
	if err != nil {
		n.t.Fatal(err)
	}
	var p *proof.Reading
	n.waitUntil("the reading's anchor", func() bool {
		p, err = gw.Prove(n.d.App(0), idx)
		if err != nil && !errors.Is(err, proof.ErrNotAnchored) {
			n.t.Fatal(err)
		}
		return err == nil
	})
	return p.Evidence(0)
}

// TestExamples runs the four example agreements on one 4-validator devnet
// (every block is agreed by all four, so they computed the same app hash),
// then replays the devnet's blocks on a fresh ledger and compares the app
// hashes.
func TestExamples(t *testing.T) {
	n := start(t)
	sensor := n.register(n.admin, "demo", "sensor")

	t.Run("thermostat", func(t *testing.T) {
		n.t = t
		cooler := n.register(n.acme, "acme", "actuator")
		id := n.deploy(n.admin, "thermostat", map[string]string{"sensor": "device:" + sensor.ID(), "cooler": "device:" + cooler.ID(), "buyer": "org:demo", "seller": "org:acme"})
		if a := n.agreement(id); a.Status != record.AgreementProposed {
			t.Fatalf("status %s before acme accepts", a.Status)
		}
		n.must(n.acme, &record.AgreementAccept{ID: id})
		// A cool reading: the guard is false, the call is refused, nothing is paid.
		n.refused(n.acme, &record.AgreementCall{ID: id, Transition: "hot", Reading: n.proveReading(sensor, 1, 24.5)}, "conflict")
		// A hot reading, proven in the anchored log, relayed by anyone: the cooler gets "on".
		start := time.Now()
		n.must(n.acme, &record.AgreementCall{ID: id, Transition: "hot", Reading: n.proveReading(sensor, 2, 33.1)})
		cmds, err := n.c.Commands(n.ctx, cooler.ID(), 0)
		if err != nil || len(cmds) != 1 || string(cmds[0].Payload) != "on" || cmds[0].Agreement != id {
			t.Fatalf("cooler's commands = %+v, %v", cmds, err)
		}
		t.Logf("reading -> command on the ledger: %v", time.Since(start))
		if b := n.balance("org:acme"); b != 2 {
			t.Fatalf("acme holds %d credits; want 2 for one command", b)
		}
		if a := n.agreement(id); a.State["commands"] != float64(1) || a.State["cooling"] != true {
			t.Fatalf("state %v", a.State)
		}
	})

	t.Run("charging", func(t *testing.T) {
		n.t = t
		ev := n.register(n.admin, "demo", "vehicle")
		charger := n.register(n.acme, "acme", "charger")
		n.must(n.admin, &record.CreditTransfer{From: "org:demo", To: "device:" + ev.ID(), Amount: 100})
		parties := map[string]string{"ev": "device:" + ev.ID(), "charger": "device:" + charger.ID(), "operator": "org:acme"}
		// Delivered in time: the escrow goes to the operator.
		id := n.deploy(n.admin, "charging", parties)
		n.must(n.acme, &record.AgreementAccept{ID: id})
		n.must(ev, &record.AgreementCall{ID: id, Transition: "reserve", Args: map[string]any{"slot": int64(2), "price": int64(30), "blocks": int64(1000)}})
		if b := n.balance("device:" + ev.ID()); b != 70 || n.agreement(id).Escrow != 30 {
			t.Fatalf("after reserving: EV holds %d, escrow %d", b, n.agreement(id).Escrow)
		}
		acmeBefore := n.balance("org:acme")
		n.refused(ev, &record.AgreementCall{ID: id, Transition: "delivered", Args: map[string]any{"kwh": int64(7)}}, "unauthorized")
		n.must(charger, &record.AgreementCall{ID: id, Transition: "delivered", Args: map[string]any{"kwh": int64(7)}})
		if b := n.balance("org:acme"); b != acmeBefore+30 || n.agreement(id).Status != record.AgreementFinished {
			t.Fatalf("after delivery: acme holds %d (want %d), status %s", b, acmeBefore+30, n.agreement(id).Status)
		}
		// Not delivered: refunded at the deadline, by the ledger itself.
		id = n.deploy(n.admin, "charging", parties)
		n.must(n.acme, &record.AgreementAccept{ID: id})
		n.must(ev, &record.AgreementCall{ID: id, Transition: "reserve", Args: map[string]any{"slot": int64(5), "price": int64(40), "blocks": int64(3)}})
		n.waitUntil("the refund", func() bool { return n.agreement(id).Status == record.AgreementFinished })
		if a := n.agreement(id); a.State["status"] != "refunded" || n.balance("device:"+ev.ID()) != 70 {
			t.Fatalf("after the deadline: %v, EV holds %d", a.State, n.balance("device:"+ev.ID()))
		}
	})

	t.Run("quarantine", func(t *testing.T) {
		n.t = t
		suspect := n.register(n.admin, "demo", "camera")
		id := n.deploy(n.admin, "quarantine", map[string]string{"gateway": "device:" + n.gw.ID(), "suspect": "device:" + suspect.ID(), "owner": "org:demo"})
		n.must(n.admin, &record.GrantAdd{Grantor: "org:demo", Subject: "agreement:" + strconv.FormatUint(id, 10), Action: record.ActionManage, Resource: "device:" + suspect.ID()})
		// Only the gateway may report.
		n.refused(n.admin, &record.AgreementCall{ID: id, Transition: "report"}, "unauthorized")
		for range 3 {
			n.must(n.gw, &record.AgreementCall{ID: id, Transition: "report"})
		}
		var d record.Device
		if err := n.c.Get(n.ctx, "/v1/devices/"+suspect.ID(), &struct {
			Record *record.Device `json:"record"`
		}{&d}); err != nil || d.Status != record.StatusSuspended {
			t.Fatalf("suspect is %q (%v); want suspended", d.Status, err)
		}
		// Suspended means refused everywhere: the gateway drops its readings.
		v := 1.0
		raw, _ := reading.Sign(suspect, suspect.ID(), reading.Reading{Seq: 1, Time: time.UnixMilli(1e12), ContentType: "x/y", Value: &v})
		if _, err := n.d.Gateway(0).IngestIndex(n.ctx, suspect.ID(), raw, "test"); err == nil {
			t.Fatal("the gateway accepted a reading of the suspended device")
		}
		n.must(n.admin, &record.AgreementCall{ID: id, Transition: "release"})
	})

	t.Run("datasharing", func(t *testing.T) {
		n.t = t
		id := n.deploy(n.admin, "datasharing", map[string]string{"owner": "org:demo", "reader": "org:acme", "sensor": "device:" + sensor.ID()})
		n.must(n.acme, &record.AgreementAccept{ID: id})
		readGrants := func() int {
			var p struct {
				Items []record.Grant `json:"items"`
			}
			if err := n.c.Get(n.ctx, "/v1/grants?subject=org:acme&action=read", &p); err != nil {
				t.Fatal(err)
			}
			return len(p.Items)
		}
		before := n.balance("org:demo")
		n.must(n.acme, &record.AgreementCall{ID: id, Transition: "pay", Args: map[string]any{"days": int64(1)}})
		if readGrants() != 1 || n.balance("org:demo") != before+5 {
			t.Fatalf("after paying: %d read grants, demo holds %d", readGrants(), n.balance("org:demo"))
		}
		n.waitUntil("the lapse", func() bool { return readGrants() == 0 && n.agreement(id).State["paid_until"] == float64(0) })
	})

	n.t = t
	replay(t, n)
}

// replay re-executes every block of the devnet on a fresh ledger App and
// checks that each gives the app hash the validators committed to.
func replay(t *testing.T, n *net) {
	node := n.d.Node(0).Chain()
	gen, err := chain.ReadGenesis(n.d.NodeHome(0))
	if err != nil {
		t.Fatal(err)
	}
	app, err := ledger.NewApp(ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var vals []abci.ValidatorUpdate
	for _, v := range gen.Validators {
		vals = append(vals, abci.Ed25519ValidatorUpdate(v.PubKey.Bytes(), v.Power))
	}
	if _, err := app.InitChain(n.ctx, &abci.RequestInitChain{ChainId: gen.ChainID, AppStateBytes: gen.AppState, Validators: vals, InitialHeight: gen.InitialHeight}); err != nil {
		t.Fatal(err)
	}
	top := node.Height() - 1 // block top+1 carries the app hash of top
	cl := node.Client()
	for h := int64(1); h <= top; h++ {
		b, err := cl.Block(n.ctx, &h)
		if err != nil {
			t.Fatal(err)
		}
		var txs [][]byte
		for _, tx := range b.Block.Txs {
			txs = append(txs, tx)
		}
		res, err := app.FinalizeBlock(n.ctx, &abci.RequestFinalizeBlock{Height: h, Txs: txs, Time: b.Block.Time})
		if err != nil {
			t.Fatal(err)
		}
		next := h + 1
		nb, err := cl.Block(n.ctx, &next)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.AppHash, nb.Block.AppHash) {
			t.Fatalf("block %d replayed on a fresh ledger: app hash %X; the validators committed %X", h, res.AppHash, []byte(nb.Block.AppHash))
		}
		if _, err := app.Commit(n.ctx, &abci.RequestCommit{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("replayed %d blocks: same app hash after each", top)
}
