package node

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/fleet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
)

// BenchmarkFleetCensus: one census of 1,000 devices of 10 organisations
// and 5 classes as /metrics and the fleet rules take it: the ledger's
// device records and each one's desired configuration (for its wake
// interval) read from a real ledger App's latest state, then classified
// against the tracker. A census is reused for [fleet] every (10 s), so
// this is what /metrics costs at most once per 10 s.
func BenchmarkFleetCensus(b *testing.B) {
	app, err := ledger.NewApp(ledger.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close()
	var g ledger.GenesisState
	tr := fleet.NewTracker(0)
	now := time.Now()
	for o := range 10 {
		admin, _ := identity.GenerateKey(identity.Ed25519)
		g.Orgs = append(g.Orgs, ledger.GenesisOrg{ID: fmt.Sprintf("org%d", o), Admins: []string{admin.ID()}})
	}
	for i := range 1000 {
		k, _ := identity.GenerateKey(identity.Ed25519)
		g.Devices = append(g.Devices, ledger.GenesisDevice{ID: k.ID(), Org: fmt.Sprintf("org%d", i%10), Class: fmt.Sprintf("class%d", (i/10)%5)})
		tr.Observe(client.ReadingItem{Device: k.ID(), Time: now.Add(-time.Duration(i) * time.Second)})
	}
	raw, _ := json.Marshal(g)
	val, _ := identity.GenerateKey(identity.Ed25519)
	if _, err := app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: "bench", AppStateBytes: raw, InitialHeight: 1,
		Validators: []abci.ValidatorUpdate{{PubKey: cmtcrypto.PublicKey{Sum: &cmtcrypto.PublicKey_Ed25519{Ed25519: val.Public().Bytes}}, Power: 10}}}); err != nil {
		b.Fatal(err)
	}
	if _, err := app.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: 1}); err != nil {
		b.Fatal(err)
	}
	if _, err := app.Commit(context.Background(), &abci.RequestCommit{}); err != nil {
		b.Fatal(err)
	}
	n := &Node{app: app, fleet: tr}
	c := fleet.NewCensus(fleet.CensusConfig{Tracker: tr, Devices: n.fleetDevices})
	if s, err := c.Refresh(); err != nil || len(s.Groups) != 50 {
		b.Fatalf("census: %v, %d groups; want 50", err, len(s.Groups))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Refresh(); err != nil {
			b.Fatal(err)
		}
	}
}
