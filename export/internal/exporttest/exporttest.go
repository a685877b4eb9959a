// Package exporttest starts a one-node network with a gateway for the
// export connectors' tests and benchmarks: organisation "acme" (its admin
// key, Sensors devices) and organisation "beta" (one device, Stranger,
// that acme's admin may not read).
package exporttest

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/export"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/node"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// ChainID is the test network's chain id.
const ChainID = "export-test"

// Net is a running one-node network with a gateway.
type Net struct {
	Node     *node.Node
	Admin    *identity.Key // admin of acme
	Gateway  *identity.Key
	Sensors  []*identity.Key // acme's devices
	Stranger *identity.Key   // beta's device
	API      string          // the node's API base URL

	mu   sync.Mutex
	seqs map[string]uint64
	net  *node.Net
}

// Start starts the network with sensors acme devices.
func Start(t testing.TB, sensors int) *Net { t.Helper(); return StartWith(t, sensors, nil) }

// StartWith is Start with the node's configuration changed by configure
// (given the network, its keys made).
func StartWith(t testing.TB, sensors int, configure func(*Net, *node.Config)) *Net {
	t.Helper()
	n := &Net{Admin: testutil.Key(t, identity.Ed25519), Gateway: testutil.Key(t, identity.Ed25519), Stranger: testutil.Key(t, identity.Ed25519), seqs: map[string]uint64{}}
	beta := testutil.Key(t, identity.Ed25519)
	g := ledger.GenesisState{
		Orgs: []ledger.GenesisOrg{{ID: "acme", Admins: []string{n.Admin.ID()}}, {ID: "beta", Admins: []string{beta.ID()}}},
		Devices: []ledger.GenesisDevice{
			{ID: n.Gateway.ID(), Org: "acme", Class: record.ClassGateway},
			{ID: n.Stranger.ID(), Org: "beta", Class: "sensor"},
		},
	}
	for range sensors {
		k := testutil.Key(t, identity.Ed25519)
		n.Sensors = append(n.Sensors, k)
		g.Devices = append(g.Devices, ledger.GenesisDevice{ID: k.ID(), Org: "acme", Class: "sensor"})
	}
	st, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	base, err := chain.FreePortBase(1)
	if err != nil {
		t.Fatal(err)
	}
	c := node.TestConfig(0, base)
	c.Gateway.Enabled = true
	c.Gateway.Key = "gateway"
	c.Gateway.AnchorInterval = node.Duration{Duration: 200 * time.Millisecond}
	// Benchmarks post thousands of readings a second from a few devices
	// on one address.
	c.Gateway.Limits.MsgsPerSec, c.Gateway.Limits.Burst = 1e6, 1e6
	c.Gateway.Limits.BytesPerSec, c.Gateway.Limits.ByteBurst = 1e9, 1e9
	if configure != nil {
		configure(n, &c)
	}
	n.net, err = node.StartNet(node.NetConfig{Dir: filepath.Join(t.TempDir(), "net"), ChainID: ChainID, AppState: st, Nodes: []node.Config{c},
		Options: func(int) []node.Option { return []node.Option{node.WithGatewayKey(n.Gateway), node.WithNoSync()} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.net.Stop() })
	n.Node = n.net.Node(0)
	n.API = "http://" + n.Node.APIAddr()
	ctx := testutil.Context(t, time.Minute)
	if err := n.net.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	return n
}

// Client is a client of the node reading as k.
func (n *Net) Client(k *identity.Key) *client.Client {
	return client.New(n.API).WithIdentity(&client.Identity{Key: k, ChainID: ChainID})
}

// Post signs the next reading of device k (value v) and stores it at the
// gateway; it returns the log index.
func (n *Net) Post(ctx context.Context, k *identity.Key, v float64) (uint64, error) {
	raw, err := n.Sign(k, v)
	if err != nil {
		return 0, err
	}
	return n.Store(ctx, raw)
}

// Sign signs the next reading of device k (value v).
func (n *Net) Sign(k *identity.Key, v float64) ([]byte, error) {
	n.mu.Lock()
	n.seqs[k.ID()]++
	seq := n.seqs[k.ID()]
	n.mu.Unlock()
	return reading.Sign(k, k.ID(), reading.Reading{Seq: seq, Time: time.UnixMilli(1_700_000_000_000 + int64(seq)), ContentType: "temperature/celsius", Value: &v})
}

// Store stores a signed envelope at the gateway (as a transport would,
// without the network); it returns the log index.
func (n *Net) Store(ctx context.Context, raw []byte) (uint64, error) {
	i, err := n.Node.Gateway().IngestIndex(ctx, "", raw, "exporttest")
	if err != nil {
		return 0, fmt.Errorf("storing a reading: %w", err)
	}
	return i, nil
}

// Grant gives subject a read grant on resource, granted by acme.
func (n *Net) Grant(ctx context.Context, subject, resource string) error {
	_, err := client.New(n.API).Send(ctx, n.Admin, "", &record.GrantAdd{Grantor: "org:acme", Subject: subject, Action: record.ActionRead, Resource: resource}, true)
	return err
}

// Run runs e until the returned stop is called (stop waits for it).
func Run(ctx context.Context, e *export.Exporter) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	return func() { cancel(); <-done }
}

// SignAll signs n readings spread over the sensors: SignAll(...)[d] are
// sensor d's, in order.
func (n *Net) SignAll(t testing.TB, count int) [][][]byte {
	t.Helper()
	raws := make([][][]byte, len(n.Sensors))
	for d, k := range n.Sensors {
		for i := range count / len(n.Sensors) {
			raw, err := n.Sign(k, float64(i))
			if err != nil {
				t.Fatal(err)
			}
			raws[d] = append(raws[d], raw)
		}
	}
	return raws
}

// StoreAll stores each sensor's readings, the sensors at once, as fast as
// the gateway takes them.
func (n *Net) StoreAll(t testing.TB, ctx context.Context, raws [][][]byte) {
	var wg sync.WaitGroup
	for _, rs := range raws {
		wg.Go(func() {
			for _, raw := range rs {
				if _, err := n.Store(ctx, raw); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
