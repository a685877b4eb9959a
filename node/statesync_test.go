package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// TestStateSyncAndPruning: three validators take a snapshot every 10
// heights and keep 15 blocks (the genesis's evidence age is short); node 0
// is a gateway whose readings are anchored. The block stores stay under
// their bound while a reading anchored before the horizon still verifies
// end to end. A fourth node then joins by state sync from the validators'
// snapshots (checked against a trusted header), agrees on the app hash,
// serves a device record with a proof that verifies, and follows new blocks.
func TestStateSyncAndPruning(t *testing.T) {
	const chainID = "statesync"
	ctx := testutil.Context(t, 3*time.Minute)
	admin, gwKey, sensor := testutil.Key(t, identity.Ed25519), testutil.Key(t, identity.Ed25519), testutil.Key(t, identity.Ed25519)
	st, _ := json.Marshal(ledger.GenesisState{
		Orgs: []ledger.GenesisOrg{{ID: "acme", Admins: []string{admin.ID()}}},
		Devices: []ledger.GenesisDevice{
			{ID: gwKey.ID(), Org: "acme", Class: record.ClassGateway},
			{ID: sensor.ID(), Org: "acme", Class: "sensor"},
		},
	})
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	const interval, retain = 10, 15
	cfgs := make([]Config, 3)
	for i := range cfgs {
		cfgs[i] = TestConfig(i, base)
		cfgs[i].Ledger.SnapshotInterval, cfgs[i].Ledger.SnapshotKeep, cfgs[i].Ledger.RetainBlocks = interval, 2, retain
	}
	cfgs[0].Gateway.Enabled = true
	cfgs[0].Gateway.AnchorInterval = Duration{Duration: 200 * time.Millisecond}

	dir := filepath.Join(t.TempDir(), "net")
	initPrunedNet(t, dir, chainID, st, cfgs)
	net, err := StartNet(NetConfig{Dir: dir, ChainID: chainID, AppState: st, Nodes: cfgs,
		Options: func(i int) []Option {
			if i == 0 {
				return []Option{WithGatewayKey(gwKey), WithNoSync()}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Stop() })
	if err := net.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	gw := client.New(net.Node(0).APIAddr()).WithIdentity(&client.Identity{Key: admin, ChainID: chainID})

	// Data: an org, devices, a reading anchored.
	if _, err := gw.Send(ctx, admin, "", &record.OrgCreate{ID: "globex", Name: "Globex"}, true); err != nil {
		t.Fatal(err)
	}
	var devs []*identity.Key
	for range 3 {
		d := testutil.Key(t, identity.Ed25519)
		proof, _ := d.Sign(record.PossessionMessage(chainID, "acme", d.ID()))
		if _, err := gw.Send(ctx, admin, "", &record.DeviceRegister{Org: "acme", Device: d.ID(), Class: "sensor", Proof: proof}, true); err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d)
	}
	v := 21.5
	raw, err := reading.Sign(sensor, sensor.ID(), reading.Reading{Seq: 1, Time: time.UnixMilli(1_700_000_000_000), ContentType: "temperature/celsius", Value: &v})
	if err != nil {
		t.Fatal(err)
	}
	idx := postReading(t, net.Node(0).APIAddr(), raw)
	p, err := gw.WaitReadingProof(ctx, idx, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	anchoredAt := p.AnchorProof.Height

	// Pruning: every validator's block store drops blocks below its horizon,
	// far above the reading's anchor, and stays under the bound.
	// The horizon is the oldest served snapshot (two kept, 10 apart; one
	// more if an export was still running when the next was due), computed
	// every 10 heights.
	const bound = 3*interval + 10 + 2
	testutil.WaitFor(t, ctx, "blocks pruned past the reading's anchor", func() bool {
		for i := range 3 {
			if net.Node(i).Chain().Comet().BlockStore().Base() <= anchoredAt+bound {
				return false
			}
		}
		return true
	})
	for i := range 3 {
		bs := net.Node(i).Chain().Comet().BlockStore()
		if n := bs.Height() - bs.Base() + 1; n > bound {
			t.Errorf("node %d keeps %d blocks (%d..%d); bound %d", i, n, bs.Base(), bs.Height(), bound)
		}
	}
	p, err = gw.WaitReadingProof(ctx, idx, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gw.VerifyReading(ctx, chainID, p); err != nil {
		t.Fatalf("reading anchored at %d no longer verifies after pruning: %v", anchoredAt, err)
	}

	// The fourth node joins by state sync.
	home3 := filepath.Join(t.TempDir(), "joiner")
	c3 := TestConfig(3, base)
	c3.Ledger.SnapshotInterval = interval
	trustH := net.Node(1).Chain().Height() - 1
	meta := net.Node(1).Chain().Comet().BlockStore().LoadBlockMeta(trustH)
	c3.StateSync = StateSyncConfig{Enable: true, TrustHeight: trustH, TrustHash: hex.EncodeToString(meta.BlockID.Hash),
		RPCServers:    []string{"http://" + cfgs[0].RPC.Listen[len("tcp://"):], "http://" + cfgs[1].RPC.Listen[len("tcp://"):]},
		DiscoveryTime: Duration{Duration: 5 * time.Second}}
	for i := range 3 {
		c3.P2P.PersistentPeers = append(c3.P2P.PersistentPeers, net.Node(i).Chain().P2PAddress())
	}
	if _, err := Init(home3, c3); err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(filepath.Join(net.Home(0), "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home3, "config", "genesis.json"), g, 0o644); err != nil {
		t.Fatal(err)
	}
	joiner, err := Start(home3, c3, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { joiner.Close() })
	testutil.WaitFor(t, ctx, "the joiner catching up", func() bool {
		return joiner.App().Height() > trustH && joiner.App().Height() >= net.Node(1).App().Height()-2
	})
	if b := joiner.Chain().Comet().BlockStore().Base(); b <= interval {
		t.Fatalf("the joiner's block store starts at %d: it replayed blocks instead of restoring a snapshot", b)
	}
	h := joiner.App().Height()
	testutil.WaitFor(t, ctx, "the validators at the joiner's height", func() bool { return net.Node(1).App().Height() >= h })
	mine, err := joiner.App().Prove(record.DeviceKey(devs[1].ID()), h)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := net.Node(1).App().Prove(record.DeviceKey(devs[1].ID()), h)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mine.Root, theirs.Root) {
		t.Fatalf("app hash at %d: joiner %X, validator %X", h, mine.Root, theirs.Root)
	}
	jc := client.New(joiner.APIAddr())
	var d record.Device
	dp, found, err := jc.ProvedRecord(ctx, "/v1/devices/"+devs[1].ID(), &d)
	if err != nil || !found || d.Org != "acme" {
		t.Fatalf("joiner's device record: %+v, found %v, %v", d, found, err)
	}
	if _, err := jc.VerifyProof(ctx, chainID, dp); err != nil {
		t.Fatalf("joiner's device proof: %v", err)
	}
	// It keeps following: a new org reaches it.
	res, err := gw.Send(ctx, admin, "", &record.OrgCreate{ID: "initech", Name: "Initech"}, true)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, ctx, "the joiner following new blocks", func() bool { return joiner.App().Height() > res.Height })
	view, err := joiner.App().View(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := view.Org("initech"); err != nil {
		t.Fatalf("the joiner missed a block: %v", err)
	}
}

// postReading posts a signed reading to a gateway's API and returns its log index.
func postReading(t *testing.T, api string, raw []byte) uint64 {
	t.Helper()
	resp, err := http.Post("http://"+api+"/v1/readings", "application/cose", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/readings: %d %s", resp.StatusCode, b)
	}
	var ok struct{ Index uint64 }
	if err := json.Unmarshal(b, &ok); err != nil {
		t.Fatal(err)
	}
	return ok.Index
}
