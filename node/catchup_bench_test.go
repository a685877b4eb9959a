package node

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// BenchmarkCatchUpNet: a one-validator network (TestConfig) runs
// $THINGNET_CATCHUP_NET_BLOCKS blocks of devnet-like ledger load (4
// gateways anchoring every block, a device registered every 10 blocks) and
// takes a snapshot at that height; then a new node catches up by replaying
// every block (block sync) and another by state sync, one after the other,
// each timed from its start until its ledger reaches that height, with the
// bytes it received from its peers (CometBFT's p2p counters; the light
// client's RPC calls for state sync are not counted, a few KB). The state
// sync time includes discovery_time (5 s here). Skipped unless set:
//
//	THINGNET_CATCHUP_NET_BLOCKS=2000 go test -run XXX -bench BenchmarkCatchUpNet -benchtime 1x -timeout 60m ./node
func BenchmarkCatchUpNet(b *testing.B) {
	n, _ := strconv.ParseInt(os.Getenv("THINGNET_CATCHUP_NET_BLOCKS"), 10, 64)
	if n <= 0 {
		b.Skip("set THINGNET_CATCHUP_NET_BLOCKS to the chain's length")
	}
	const chainID = "catchup"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	admin := testutil.Key(b, identity.Ed25519)
	gws := make([]*identity.Key, 4)
	g := ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: "acme", Admins: []string{admin.ID()}}}}
	for i := range gws {
		gws[i] = testutil.Key(b, identity.Ed25519)
		g.Devices = append(g.Devices, ledger.GenesisDevice{ID: gws[i].ID(), Org: "acme", Class: record.ClassGateway})
	}
	st, _ := json.Marshal(g)
	base, err := chain.FreePortBase(3)
	if err != nil {
		b.Fatal(err)
	}
	c0 := TestConfig(0, base)
	c0.Ledger.SnapshotInterval = n
	net, err := StartNet(NetConfig{Dir: filepath.Join(b.TempDir(), "net"), ChainID: chainID, AppState: st, Nodes: []Config{c0}})
	if err != nil {
		b.Fatal(err)
	}
	defer net.Stop()
	v := net.Node(0)
	if err := net.WaitForHeight(ctx, 2); err != nil {
		b.Fatal(err)
	}

	// The load: a batch of txs each time the height moves.
	logs := make([]*testonly.Tree, len(gws))
	for i := range logs {
		logs[i] = testonly.New(rfc6962.DefaultHasher)
	}
	nonces := map[string]uint64{}
	send := func(k *identity.Key, h int64, m record.Msg) {
		nonces[k.ID()]++
		raw, err := record.NewTx(k, k.ID(), chainID, nonces[k.ID()], h+100, m)
		if err != nil {
			b.Fatal(err)
		}
		res, err := v.Chain().Client().BroadcastTxSync(ctx, raw)
		if err != nil || res.Code != 0 {
			b.Fatalf("broadcast at %d: %v %v", h, res, err)
		}
	}
	built := time.Now()
	for h := v.App().Height(); h < n; {
		for i, k := range gws {
			from := logs[i].Size()
			for r := range 10 {
				logs[i].AppendData(fmt.Appendf(nil, "gateway %d reading %d", i, int(from)+r))
			}
			a := &record.DataAnchor{Size: logs[i].Size(), Root: logs[i].Hash()}
			if from > 0 {
				p, err := logs[i].ConsistencyProof(from, logs[i].Size())
				if err != nil {
					b.Fatal(err)
				}
				a.Consistency = p
			}
			send(k, h, a)
		}
		if h%10 == 0 {
			d := testutil.Key(b, identity.Ed25519)
			proof, _ := d.Sign(record.PossessionMessage(chainID, "acme", d.ID()))
			send(admin, h, &record.DeviceRegister{Org: "acme", Device: d.ID(), Class: "sensor", Proof: proof})
		}
		testutil.WaitFor(b, ctx, "the next block", func() bool { return v.App().Height() > h })
		h = v.App().Height()
	}
	testutil.WaitFor(b, ctx, "the snapshot", func() bool { return v.App().Snapshots() >= 1 })
	b.Logf("%d blocks built in %v", n, time.Since(built))

	join := func(i int, stateSync bool) (time.Duration, int64) {
		c := TestConfig(i, base)
		c.P2P.PersistentPeers = []string{v.Chain().P2PAddress()}
		if stateSync {
			meta := v.Chain().Comet().BlockStore().LoadBlockMeta(n)
			c.StateSync = StateSyncConfig{Enable: true, TrustHeight: n, TrustHash: fmt.Sprintf("%X", meta.BlockID.Hash),
				RPCServers: []string{"http://" + c0.RPC.Listen[len("tcp://"):]}, DiscoveryTime: Duration{Duration: 5 * time.Second}}
		}
		home := filepath.Join(b.TempDir(), fmt.Sprint("joiner", i))
		if _, err := Init(home, c); err != nil {
			b.Fatal(err)
		}
		gen, err := os.ReadFile(filepath.Join(net.Home(0), "config", "genesis.json"))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, "config", "genesis.json"), gen, 0o644); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		j, err := Start(home, c, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer j.Close()
		testutil.WaitFor(b, ctx, "the joiner at the snapshot height", func() bool { return j.App().Height() >= n })
		took := time.Since(start)
		var recv int64
		for _, p := range j.Chain().Comet().Switch().Peers().List() {
			recv += p.Status().RecvMonitor.Bytes
		}
		return took, recv
	}
	b.ResetTimer()
	for range b.N {
		rt, rb := join(1, false)
		st, sb := join(2, true)
		b.ReportMetric(rt.Seconds(), "replay-s")
		b.ReportMetric(float64(rb), "replay-bytes")
		b.ReportMetric(st.Seconds(), "statesync-s")
		b.ReportMetric(float64(sb), "statesync-bytes")
	}
}
