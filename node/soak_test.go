package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// Soak parameters: an accelerated month in a few minutes. A "day" is
// soakDay of wall time: entries are archived a day after their receipt,
// the short-lived organisation's readings are kept six, blocks are
// pruned past the last soakRetain (and the served snapshots').
const (
	soakNodes     = 3
	soakDay       = 10 * time.Second
	soakSegment   = 400 // entries a segment
	soakRetain    = 60  // blocks
	soakSnapshots = 25  // heights between snapshots, 2 kept
	soakPerEnv    = 10  // readings an envelope
	// soakRetention is the short-lived organisation's retention: the
	// ledger's least (60 s), six "days".
	soakRetention = 60 * time.Second
)

// soakParts are the parts of a node's disk the soak samples, by the
// directories under its home that hold them.
var soakParts = []struct {
	name string
	dirs []string
	skip string // a directory under the first not counted (counted on its own)
}{
	{"blocks", []string{"data/blockstore.db"}, ""},
	{"state", []string{"data/state.db", "data/ledger"}, "data/ledger/snapshots"},
	{"snapshots", []string{"data/ledger/snapshots"}, ""},
	{"log", []string{"data/gateway/datalog"}, ""},
	{"index", []string{"data/gateway/index"}, ""},
	{"files", []string{"data/files"}, ""},
}

// soakLoad is what a bound is computed from at one sample.
type soakLoad struct {
	height   int64  // blocks committed
	entries  uint64 // this node's log entries
	archived uint64 // of which dropped here (archived)
	pinned   uint64 // bytes of the other gateways' segments this node pins (the ledger's records)
	blocks   int64  // blocks in the block store
}

// soakBound is part's bound at load l: a fixed allowance for the store's
// own files (write-ahead logs, memtables flushed and not yet compacted:
// Pebble's and LevelDB's), and what the configuration says may stay.
func soakBound(part string, l soakLoad) int64 {
	const mb = 1 << 20
	switch part {
	case "blocks": // pruned: max(retain, 2 snapshots, evidence) + 10 blocks of ~4 KB; LevelDB's 4 MB write
		// buffer and the tables where pruned blocks wait to be compacted away
		return 8*mb + (2*soakRetain+10)*8<<10
	case "state": // every anchor and log.archive stays in the ledger: it grows with blocks
		return 8*mb + l.height*4<<10
	case "snapshots": // 2 kept, each about the state's size
		return 4*mb + 2*(8*mb+l.height*4<<10)/4
	case "log": // archived: hashes (~100 B an entry); the rest in full (~1.3 KB an entry of 10 readings)
		return 4*mb + int64(l.archived)*200 + int64(l.entries-l.archived)*3<<10
	case "index": // archived: folded (~5 B a reading); stored: ~100 B a reading; roll-ups. And
		// Pebble's budget: its memtables and write-ahead log (4 MB each) and the L0 files not yet
		// compacted (up to 4 flushed memtables), where the roll-up blocks rewritten by every batch and
		// the folded keys' tombstones wait to be compacted away
		return 24*mb + int64(l.archived)*soakPerEnv*20 + int64(l.entries-l.archived)*soakPerEnv*250
	case "files": // the segments pinned here, own segments in flight, the cache
		return 8*mb + 2*int64(l.pinned) + 2*soakSegment*3<<10
	}
	return 0
}

// TestSoak runs real nodes for an accelerated month (make soak;
// THINGNET_SOAK_MINUTES, and THINGNET_SOAK_RATE envelopes a second,
// default 100): three validators on loopback, each a gateway that
// archives its entries a "day" (soakDay) after receipt and pins the
// others' segments (min_pins 2), blocks pruned (retain_blocks) with state
// sync snapshots, state versions pruned, and an organisation whose
// readings are kept six "days" (retention: its entries stay at their
// gateway until then, not archived). A simulated fleet posts signed
// envelopes to the three gateways. Every few seconds it samples each
// node's bytes on disk by part and, after a warm-up of a quarter of the
// run, fails if any part exceeds its bound (soakBound); it ends with the
// table of the largest sample of each part against its bound.
func TestSoak(t *testing.T) {
	v := os.Getenv("THINGNET_SOAK_MINUTES")
	if v == "" {
		t.Skip("runs real nodes for minutes: THINGNET_SOAK_MINUTES=N (make soak)")
	}
	mins, err := strconv.ParseFloat(v, 64)
	if err != nil || mins <= 0 {
		t.Fatalf("THINGNET_SOAK_MINUTES=%q: want a number of minutes", v)
	}
	rate := 100.0
	if v := os.Getenv("THINGNET_SOAK_RATE"); v != "" {
		if rate, err = strconv.ParseFloat(v, 64); err != nil || rate <= 0 {
			t.Fatalf("THINGNET_SOAK_RATE=%q: want envelopes a second", v)
		}
	}
	run := time.Duration(mins * float64(time.Minute))
	warm := run / 4
	const chainID = "soak"
	ctx := testutil.Context(t, run+5*time.Minute)

	admin := testutil.Key(t, identity.Ed25519)
	var gwKeys, sensors []*identity.Key
	gen := ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: "acme", Admins: []string{admin.ID()}}, {ID: "brief", Admins: []string{admin.ID()}}}}
	for range soakNodes {
		k := testutil.Key(t, identity.Ed25519)
		gwKeys = append(gwKeys, k)
		gen.Devices = append(gen.Devices, ledger.GenesisDevice{ID: k.ID(), Org: "acme", Class: record.ClassGateway})
	}
	for d := range 12 {
		k := testutil.Key(t, identity.Ed25519)
		sensors = append(sensors, k)
		org := "acme"
		if d%4 == 3 {
			org = "brief" // a quarter of the fleet: values kept one day
		}
		gen.Devices = append(gen.Devices, ledger.GenesisDevice{ID: k.ID(), Org: org, Class: "sensor"})
	}
	st, _ := json.Marshal(gen)
	base, err := chain.FreePortBase(soakNodes)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "net")
	cfgs := make([]Config, soakNodes)
	for i := range cfgs {
		c := DevConfig(i, base)
		c.Consensus.TimeoutCommit = Duration{Duration: 200 * time.Millisecond}
		c.Ledger.KeepVersions, c.Ledger.RetainBlocks = 20, soakRetain
		c.Ledger.SnapshotInterval, c.Ledger.SnapshotKeep = soakSnapshots, 2
		c.Gateway.AnchorInterval = Duration{Duration: time.Second}
		c.Gateway.RetentionInterval = Duration{Duration: soakDay / 2}
		c.Gateway.Archive = ArchiveConfig{Enabled: true, Age: Duration{Duration: soakDay}, SegmentEntries: soakSegment, MinPins: 2,
			Interval: Duration{Duration: time.Second}}
		c.Mesh.FilesCacheMB = 8
		// The whole fleet posts from 127.0.0.1: one source.
		c.Gateway.SourceLimits = LimitsConfig{MsgsPerSec: 2 * rate, Burst: int(2*rate) + 20, BytesPerSec: 2 * rate * 4096, ByteBurst: (int(2*rate) + 20) * 4096,
			ConnectsPerSec: 10, ConnectBurst: 50}
		cfgs[i] = c
	}
	initPrunedNet(t, dir, chainID, st, cfgs)
	net, err := StartNet(NetConfig{Dir: dir, ChainID: chainID, AppState: st, Nodes: cfgs,
		Options: func(i int) []Option { return []Option{WithGatewayKey(gwKeys[i]), WithNoSync()} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Stop() })
	if err := net.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	c0 := client.New(net.Node(0).APIAddr()).WithIdentity(&client.Identity{Key: admin, ChainID: chainID})
	if _, err := c0.Send(ctx, admin, "", &record.OrgPolicy{Org: "brief", Retention: uint64(soakRetention / time.Second)}, true); err != nil {
		t.Fatalf("org.policy: %v", err)
	}

	// The fleet: each sensor posts to one gateway, at rate envelopes a
	// second in all.
	fleetCtx, stopFleet := context.WithCancel(ctx)
	var sent, refused atomic.Uint64
	var lastErr atomic.Value
	var wg sync.WaitGroup
	every := time.Duration(float64(len(sensors)) / rate * float64(time.Second))
	for d, k := range sensors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := "http://" + net.Node(d%soakNodes).APIAddr() + "/v1/readings"
			tick := time.NewTicker(every)
			defer tick.Stop()
			seq := uint64(0)
			for {
				select {
				case <-fleetCtx.Done():
					return
				case <-tick.C:
				}
				rs := make([]reading.Reading, soakPerEnv)
				now := time.Now()
				for j := range rs {
					seq++
					v := float64(seq % 40)
					rs[j] = reading.Reading{Seq: seq, Time: now.Add(time.Duration(j-soakPerEnv) * time.Millisecond), ContentType: "temperature/celsius", Value: &v}
				}
				raw, err := reading.Sign(k, k.ID(), rs...)
				if err != nil {
					lastErr.Store(err.Error())
					return
				}
				resp, err := http.Post(url, "application/cose", bytes.NewReader(raw))
				if err != nil {
					refused.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					refused.Add(1)
					lastErr.Store(fmt.Sprintf("%d %s", resp.StatusCode, b))
					continue
				}
				sent.Add(1)
			}
		}()
	}
	t.Cleanup(func() { stopFleet(); wg.Wait() })

	type peak struct {
		bytes, bound int64
		last         int64
	}
	peaks := make([]map[string]*peak, soakNodes)
	for i := range peaks {
		peaks[i] = map[string]*peak{}
	}
	start := time.Now()
	var over []string
	sample := func() {
		for i := range soakNodes {
			l, err := soakLoadOf(net, i)
			if err != nil {
				t.Logf("node %d: %v", i, err)
				continue
			}
			for _, p := range soakParts {
				n := int64(0)
				for _, d := range p.dirs {
					n += dirBytes(filepath.Join(net.Home(i), d), filepath.Join(net.Home(i), p.skip))
				}
				b := soakBound(p.name, l)
				pk := peaks[i][p.name]
				if pk == nil {
					pk = &peak{}
					peaks[i][p.name] = pk
				}
				pk.last = n
				if time.Since(start) < warm {
					continue
				}
				if n > pk.bytes {
					pk.bytes, pk.bound = n, b
				}
				if n > b {
					over = append(over, fmt.Sprintf("node %d %s: %d bytes at %v, bound %d (%+v)", i, p.name, n, time.Since(start).Round(time.Second), b, l))
				}
			}
		}
	}
	t.Logf("soak: %d nodes, %v (a day is %v: %.0f days), %.0f envelopes/s of %d readings", soakNodes, run, soakDay, run.Seconds()/soakDay.Seconds(), rate, soakPerEnv)
	for tick := time.NewTicker(5 * time.Second); time.Since(start) < run; {
		select {
		case <-ctx.Done():
			t.Fatal("timed out")
		case <-tick.C:
		}
		sample()
		if len(over) > 0 {
			break
		}
		if n := int(time.Since(start) / time.Minute); time.Since(start)%time.Minute < 5*time.Second {
			l, _ := soakLoadOf(net, 0)
			var parts strings.Builder
			for _, p := range soakParts {
				fmt.Fprintf(&parts, " %s %.2f MB", p.name, float64(peaks[0][p.name].last)/1e6)
			}
			t.Logf("minute %d: height %d (%d kept), node 0: %d entries, %d archived, %d B pinned;%s; %d envelopes sent, %d refused",
				n, l.height, l.blocks, l.entries, l.archived, l.pinned, parts.String(), sent.Load(), refused.Load())
		}
	}
	stopFleet()
	wg.Wait()

	t.Logf("after %v: %d envelopes stored (%d readings), %d refused (last: %v)", time.Since(start).Round(time.Second), sent.Load(), sent.Load()*soakPerEnv, refused.Load(), lastErr.Load())
	var tab strings.Builder
	fmt.Fprintf(&tab, "\n| node | height (blocks kept) | entries (archived) | part | largest after warm-up | bound then | at the end |\n| ---: | ---: | ---: | --- | ---: | ---: | ---: |\n")
	for i := range soakNodes {
		l, _ := soakLoadOf(net, i)
		for _, p := range soakParts {
			pk := peaks[i][p.name]
			if pk == nil {
				continue
			}
			fmt.Fprintf(&tab, "| %d | %d (%d) | %d (%d) | %s | %.2f MB | %.2f MB | %.2f MB |\n", i, l.height, l.blocks, l.entries, l.archived, p.name, float64(pk.bytes)/1e6, float64(pk.bound)/1e6, float64(pk.last)/1e6)
		}
	}
	t.Log(tab.String())
	for _, o := range over {
		t.Error(o)
	}
	if refused.Load() > sent.Load()/100 {
		t.Errorf("%d of %d envelopes refused (last: %v)", refused.Load(), sent.Load()+refused.Load(), lastErr.Load())
	}
	for i := range soakNodes {
		if l, _ := soakLoadOf(net, i); l.archived == 0 {
			t.Errorf("node %d archived nothing in %v", i, run)
		}
	}
}

// soakLoadOf is node i's load now.
func soakLoadOf(net *Net, i int) (soakLoad, error) {
	n := net.Node(i)
	gw := n.Gateway()
	s, err := gw.ArchiveStatus()
	if err != nil {
		return soakLoad{}, err
	}
	bs := n.Chain().Comet().BlockStore()
	l := soakLoad{height: n.App().Height(), entries: gw.Log().Size(), archived: s.Archived, blocks: bs.Height() - bs.Base() + 1}
	view, err := n.App().View(0)
	if err != nil {
		return l, err
	}
	err = view.LogArchives("", func(r *record.LogArchive) bool {
		if r.Gateway == gw.ID() {
			return true
		}
		pins, err := view.FilePins(r.CID)
		if err != nil {
			return false
		}
		for _, p := range pins {
			if p.Pinner == gw.ID() {
				l.pinned += r.Size
			}
		}
		return true
	})
	return l, err
}

// dirBytes is the bytes of the files under dir, without those under skip.
func dirBytes(dir, skip string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && p == skip {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// initPrunedNet writes the homes of a net of cfgs and its genesis, whose
// evidence expires after 5 blocks and a second so that block pruning is
// not held up by it (StartNet keeps a genesis written before it).
func initPrunedNet(t *testing.T, dir, chainID string, appState []byte, cfgs []Config) {
	t.Helper()
	var vals []chain.GenesisValidator
	for i, c := range cfgs {
		id, err := chain.InitHome(c.chainConfig(filepath.Join(dir, fmt.Sprintf("node%d", i))))
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, chain.GenesisValidator{Name: c.Moniker, PubKey: id.ValidatorPubKey, Power: 10})
	}
	if err := chain.WriteGenesis(filepath.Join(dir, "node0"), chain.Genesis{ChainID: chainID, Validators: vals, AppState: appState,
		EvidenceMaxAgeBlocks: 5, EvidenceMaxAge: time.Second}); err != nil {
		t.Fatal(err)
	}
}
