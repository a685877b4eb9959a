package lightclient

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/node"
	"github.com/thingnet/thingnet/record"
)

// testNet is a real 4-validator network of nodes (node.TestConfig: the
// ledger, CometBFT and the API).
type testNet struct {
	chainID string
	net     *node.Net
	clients []*client.Client
	admin   *identity.Key // admin of org "acme"
}

const testOrg = "acme"

func startNet(t *testing.T, chainID string) *testNet {
	t.Helper()
	tn := &testNet{chainID: chainID, admin: newKey(t)}
	st, err := json.Marshal(ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: testOrg, Admins: []string{tn.admin.ID()}}}})
	if err != nil {
		t.Fatal(err)
	}
	const size = 4
	base, err := chain.FreePortBase(size)
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]node.Config, size)
	for i := range nodes {
		nodes[i] = node.TestConfig(i, base)
	}
	tn.net, err = node.StartNet(node.NetConfig{Dir: filepath.Join(t.TempDir(), "net"), ChainID: chainID, AppState: st, Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tn.net.Stop() })
	for i := range size {
		tn.clients = append(tn.clients, client.New(tn.net.Node(i).APIAddr()))
	}
	if err := tn.net.WaitForHeight(testCtx(t), 2); err != nil {
		t.Fatal(err)
	}
	return tn
}

func (tn *testNet) home(i int) string { return tn.net.Home(i) }

// waitHeight waits until every node has committed block h.
func (tn *testNet) waitHeight(t *testing.T, h int64) {
	t.Helper()
	if err := tn.net.WaitForHeight(testCtx(t), h); err != nil {
		t.Fatalf("waiting for height %d: %v", h, err)
	}
}

// trustedHash is what a device would be provisioned with: the hash of the
// header of height h, as the network's operators publish it.
func (tn *testNet) trustedHash(t *testing.T, h int64) []byte {
	t.Helper()
	hr, err := tn.clients[0].Header(testCtx(t), h)
	if err != nil {
		t.Fatal(err)
	}
	return hr.SignedHeader.Hash()
}

// register registers a new device of org acme and returns its key and the
// height of the block that registered it.
func (tn *testNet) register(t *testing.T) (*identity.Key, int64) {
	t.Helper()
	dev := newKey(t)
	proof, err := dev.Sign(record.PossessionMessage(tn.chainID, testOrg, dev.ID()))
	if err != nil {
		t.Fatal(err)
	}
	res, err := tn.clients[0].Send(testCtx(t), tn.admin, "", &record.DeviceRegister{Org: testOrg, Device: dev.ID(), Class: "sensor", Proof: proof}, true)
	if err != nil {
		t.Fatalf("registering a device: %v", err)
	}
	return dev, res.Height
}

// deviceProof asks node i for the latest record of a device with its proof.
func (tn *testNet) deviceProof(t *testing.T, i int, id string) (*record.Proof, bool) {
	t.Helper()
	var d record.Device
	p, found, err := tn.clients[i].ProvedRecord(testCtx(t), "/v1/devices/"+id, &d)
	if err != nil {
		t.Fatalf("proof of device %s: %v", id, err)
	}
	if found && d.ID != id {
		t.Fatalf("node %d answered device %s for %s", i, d.ID, id)
	}
	return p, found
}

// setPower sets the consensus power of node target's validator with a
// validator.update tx approved by the validators of nodes approvers, and
// returns the height of the block that executed it (the change applies two
// blocks later).
func (tn *testNet) setPower(t *testing.T, seq uint64, target int, power int64, approvers ...int) int64 {
	t.Helper()
	pub, _, err := chain.SignWithValidatorKey(tn.home(target), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &record.ValidatorUpdate{PubKey: pub, Power: power, Seq: seq}
	msg := record.ValidatorUpdateMessage(tn.chainID, seq, pub, power)
	for _, i := range approvers {
		vpub, sig, err := chain.SignWithValidatorKey(tn.home(i), msg)
		if err != nil {
			t.Fatal(err)
		}
		m.Approvals = append(m.Approvals, record.Approval{Validator: vpub, Signature: sig})
	}
	res, err := tn.clients[1].Send(testCtx(t), newKey(t), "", m, true)
	if err != nil {
		t.Fatalf("validator update %d (node %d to power %d): %v", seq, target, power, err)
	}
	return res.Height
}

func newKey(t *testing.T) *identity.Key {
	t.Helper()
	k, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testCtx is a context for one step of a test: generous for a loaded
// machine, but bounded.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
