package node

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// TestNetStopWithCommitsInFlight stops a net of four validators while
// clients wait for their transactions' commits through two of them and
// the other two are idle. The idle nodes must not leave consensus before
// the busy nodes' requests are answered: Stop returns no error (an API
// cut off after its 5 s grace says so), in well under the 10 s a
// commit-waiting request would wait for a chain without its quorum.
func TestNetStopWithCommitsInFlight(t *testing.T) {
	const chainID, senders = "stopnet", 8
	ctx := testutil.Context(t, 2*time.Minute)
	admins := make([]*identity.Key, senders)
	ids := make([]string, senders)
	for i := range admins {
		admins[i] = testutil.Key(t, identity.Ed25519)
		ids[i] = admins[i].ID()
	}
	st, _ := json.Marshal(ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: "acme", Admins: ids}}})
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	cfgs := make([]Config, 4)
	for i := range cfgs {
		cfgs[i] = TestConfig(i, base)
	}
	net, err := StartNet(NetConfig{Dir: filepath.Join(t.TempDir(), "net"), ChainID: chainID, AppState: st, Nodes: cfgs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Stop() })
	if err := net.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}

	// Senders register devices through nodes 2 and 3, each waiting for
	// its commit, until the net stops under them.
	var committed atomic.Int64
	var wg sync.WaitGroup
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	for i, admin := range admins {
		c := client.New(net.Node(2 + i%2).APIAddr())
		wg.Go(func() {
			for sendCtx.Err() == nil {
				d := testutil.Key(t, identity.Ed25519)
				proof, _ := d.Sign(record.PossessionMessage(chainID, "acme", d.ID()))
				if _, err := c.Send(sendCtx, admin, "", &record.DeviceRegister{Org: "acme", Device: d.ID(), Class: "sensor", Proof: proof}, true); err != nil {
					return // the net is stopping
				}
				committed.Add(1)
			}
		})
	}
	for committed.Load() < 3*senders {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d registrations committed", committed.Load())
		case <-time.After(20 * time.Millisecond):
		}
	}
	start := time.Now()
	err = net.Stop()
	took := time.Since(start)
	stopSending()
	wg.Wait()
	if err != nil {
		t.Fatalf("stopping the net with commits in flight (after %d committed): %v", committed.Load(), err)
	}
	if took > 8*time.Second {
		t.Errorf("stopping the net took %v; requests in flight waited for a chain without its quorum", took)
	}
	t.Logf("%d registrations committed; stopped in %v", committed.Load(), took.Round(time.Millisecond))
}
