package ledger

import (
	"bytes"
	"context"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// snapChain is a chain with a few orgs and devices whose ledger serves
// snapshots of small chunks (so that there are several).
func snapChain(t *testing.T, cfg Config) (*chainT, []*identity.Key) {
	t.Helper()
	admin := mustKey(t, identity.Ed25519)
	if cfg.SnapshotInterval == 0 {
		cfg.SnapshotInterval = 1 << 40 // only TakeSnapshot
	}
	if cfg.SnapshotChunkBytes == 0 {
		cfg.SnapshotChunkBytes = 1024
	}
	c := newChainConfig(t, orgGenesis(admin, "acme", "globex"), cfg, nil)
	var devs []*identity.Key
	for range 6 {
		devs = append(devs, c.register(admin, "acme", identity.Ed25519))
	}
	return c, devs
}

// restoreInto offers sn (from src) to dst and applies its chunks, with
// appHash as the verified app hash; it returns the last chunk's result.
func restoreInto(t *testing.T, dst *App, src *App, sn *abci.Snapshot, appHash []byte) abci.ResponseApplySnapshotChunk_Result {
	t.Helper()
	ctx := context.Background()
	off, err := dst.OfferSnapshot(ctx, &abci.RequestOfferSnapshot{Snapshot: sn, AppHash: appHash})
	if err != nil || off.Result != abci.ResponseOfferSnapshot_ACCEPT {
		t.Fatalf("OfferSnapshot = %v, %v; want ACCEPT", off, err)
	}
	var last abci.ResponseApplySnapshotChunk_Result
	for i := range sn.Chunks {
		ch, err := src.LoadSnapshotChunk(ctx, &abci.RequestLoadSnapshotChunk{Height: sn.Height, Format: sn.Format, Chunk: i})
		if err != nil || len(ch.Chunk) == 0 {
			t.Fatalf("LoadSnapshotChunk(%d) = %d bytes, %v", i, len(ch.Chunk), err)
		}
		res, err := dst.ApplySnapshotChunk(ctx, &abci.RequestApplySnapshotChunk{Index: i, Chunk: ch.Chunk, Sender: "honest"})
		if err != nil {
			t.Fatal(err)
		}
		last = res.Result
		if last != abci.ResponseApplySnapshotChunk_ACCEPT {
			return last
		}
	}
	return last
}

func hashAt(t *testing.T, a *App, h int64) []byte {
	t.Helper()
	v, err := a.version(h)
	if err != nil {
		t.Fatal(err)
	}
	return v.Hash()
}

// TestSnapshotRestore: a fresh ledger restores a snapshot, refusing a chunk
// altered by a lying peer (RETRY, the sender rejected, the chunk fetched
// again) and taking the good one; it then holds the same state and
// executes the next block to the same app hash as the source.
func TestSnapshotRestore(t *testing.T) {
	for _, onDisk := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "disk"}[onDisk], func(t *testing.T) {
			src, devs := snapChain(t, Config{})
			sn, err := src.app.TakeSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			if sn.Chunks < 3 {
				t.Fatalf("snapshot of %d chunks; the test needs several", sn.Chunks)
			}
			dstCfg := Config{}
			if onDisk {
				dstCfg.Dir = t.TempDir()
			}
			dst, err := NewApp(dstCfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { dst.Close() })
			ctx := context.Background()
			off, err := dst.OfferSnapshot(ctx, &abci.RequestOfferSnapshot{Snapshot: sn, AppHash: hashAt(t, src.app, int64(sn.Height))})
			if err != nil || off.Result != abci.ResponseOfferSnapshot_ACCEPT {
				t.Fatalf("OfferSnapshot = %v, %v", off, err)
			}
			for i := range sn.Chunks {
				ch, _ := src.app.LoadSnapshotChunk(ctx, &abci.RequestLoadSnapshotChunk{Height: sn.Height, Format: sn.Format, Chunk: i})
				if i == 1 { // a lying peer's version first
					bad := bytes.Clone(ch.Chunk)
					bad[len(bad)/2] ^= 1
					res, err := dst.ApplySnapshotChunk(ctx, &abci.RequestApplySnapshotChunk{Index: i, Chunk: bad, Sender: "liar"})
					if err != nil {
						t.Fatal(err)
					}
					if res.Result != abci.ResponseApplySnapshotChunk_RETRY || len(res.RejectSenders) != 1 || res.RejectSenders[0] != "liar" ||
						len(res.RefetchChunks) != 1 || res.RefetchChunks[0] != 1 {
						t.Fatalf("altered chunk: %v; want RETRY, refetch [1], reject [liar]", res)
					}
				}
				res, err := dst.ApplySnapshotChunk(ctx, &abci.RequestApplySnapshotChunk{Index: i, Chunk: ch.Chunk, Sender: "honest"})
				if err != nil || res.Result != abci.ResponseApplySnapshotChunk_ACCEPT {
					t.Fatalf("chunk %d: %v, %v; want ACCEPT", i, res, err)
				}
			}
			info, _ := dst.Info(ctx, &abci.RequestInfo{})
			srcInfo, _ := src.app.Info(ctx, &abci.RequestInfo{})
			if info.LastBlockHeight != srcInfo.LastBlockHeight || !bytes.Equal(info.LastBlockAppHash, srcInfo.LastBlockAppHash) {
				t.Fatalf("restored Info = %d %X; source %d %X", info.LastBlockHeight, info.LastBlockAppHash, srcInfo.LastBlockHeight, srcInfo.LastBlockAppHash)
			}
			if dst.ChainID() != testChain {
				t.Errorf("restored chain id %q", dst.ChainID())
			}
			st, err := dst.View(0)
			if err != nil {
				t.Fatal(err)
			}
			if d, err := st.Device(devs[3].ID()); err != nil || d.Org != "acme" {
				t.Fatalf("restored Device = %+v, %v", d, err)
			}
			if _, err := dst.Prove(record.DeviceKey(devs[0].ID()), 0); err != nil {
				t.Fatalf("restored ledger cannot prove: %v", err)
			}

			// The next block, run on both, gives the same app hash.
			tx := src.sign(devs[0], "", &record.DeviceUpdate{Device: devs[0].ID(), Firmware: "2.0.0"})
			h := src.height + 1
			want := src.block(tx)
			res, err := dst.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: h, Txs: [][]byte{tx}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dst.Commit(ctx, &abci.RequestCommit{}); err != nil {
				t.Fatal(err)
			}
			if res.TxResults[0].Code != want[0].Code || !bytes.Equal(res.AppHash, hashAt(t, src.app, h)) {
				t.Fatalf("block %d on the restored ledger: code %d hash %X; source code %d hash %X", h, res.TxResults[0].Code, res.AppHash, want[0].Code, hashAt(t, src.app, h))
			}
		})
	}
}

// TestSnapshotWrongAppHash: a snapshot whose chunks match its metadata but
// whose state does not hash to the verified app hash is refused, and the
// ledger is left empty for the next one, which succeeds.
func TestSnapshotWrongAppHash(t *testing.T) {
	src, _ := snapChain(t, Config{})
	sn, err := src.app.TakeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	dst, err := NewApp(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	good := hashAt(t, src.app, int64(sn.Height))
	bad := bytes.Clone(good)
	bad[0] ^= 1
	if got := restoreInto(t, dst, src.app, sn, bad); got != abci.ResponseApplySnapshotChunk_REJECT_SNAPSHOT {
		t.Fatalf("restore against a wrong app hash: %v; want REJECT_SNAPSHOT", got)
	}
	if h := dst.Height(); h != 0 {
		t.Fatalf("after a refused snapshot the ledger is at height %d; want 0", h)
	}
	if got := restoreInto(t, dst, src.app, sn, good); got != abci.ResponseApplySnapshotChunk_ACCEPT {
		t.Fatalf("restore after a refused one: %v; want ACCEPT", got)
	}
	if !bytes.Equal(dst.tree.Hash(), good) {
		t.Fatal("restored state differs")
	}
}

// TestSnapshotOfferRefusals: offers that cannot be right are refused
// before anything is written.
func TestSnapshotOfferRefusals(t *testing.T) {
	src, _ := snapChain(t, Config{})
	sn, err := src.app.TakeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	hash := hashAt(t, src.app, int64(sn.Height))
	ctx := context.Background()
	other := *sn
	other.Chunks++
	wrongFormat := *sn
	wrongFormat.Format = 7
	badMeta := *sn
	badMeta.Metadata = append(bytes.Clone(sn.Metadata), 0)
	for name, tc := range map[string]struct {
		sn   *abci.Snapshot
		hash []byte
		want abci.ResponseOfferSnapshot_Result
	}{
		"chunk count":   {&other, hash, abci.ResponseOfferSnapshot_REJECT},
		"format":        {&wrongFormat, hash, abci.ResponseOfferSnapshot_REJECT_FORMAT},
		"metadata":      {&badMeta, hash, abci.ResponseOfferSnapshot_REJECT},
		"app hash size": {sn, hash[:8], abci.ResponseOfferSnapshot_REJECT},
		"has state":     {sn, hash, abci.ResponseOfferSnapshot_ABORT},
	} {
		app := src.app // has state
		if name != "has state" {
			fresh, err := NewApp(Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			app = fresh
		}
		res, err := app.OfferSnapshot(ctx, &abci.RequestOfferSnapshot{Snapshot: tc.sn, AppHash: tc.hash})
		if err != nil || res.Result != tc.want {
			t.Errorf("%s: %v, %v; want %v", name, res, err, tc.want)
		}
	}
}

// TestSnapshotInterval: snapshots are taken every interval heights in the
// background and only the last SnapshotKeep are served; the version being
// exported is not pruned meanwhile.
func TestSnapshotInterval(t *testing.T) {
	c, _ := snapChain(t, Config{SnapshotInterval: 5, SnapshotKeep: 2, KeepVersions: 2, Dir: t.TempDir()})
	deadline := time.Now().Add(30 * time.Second)
	for c.height < 30 {
		c.block()
		for c.app.snap.exporting.Load() != 0 { // wait for each export: none is skipped
			if time.Now().After(deadline) {
				t.Fatal("snapshot export did not finish")
			}
			time.Sleep(time.Millisecond)
		}
	}
	list, err := c.app.ListSnapshots(context.Background(), &abci.RequestListSnapshots{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Snapshots) != 2 || list.Snapshots[0].Height != 30 || list.Snapshots[1].Height != 25 {
		var hs []uint64
		for _, s := range list.Snapshots {
			hs = append(hs, s.Height)
		}
		t.Fatalf("snapshots at %v; want [30 25]", hs)
	}
	if got := c.app.snap.oldestServed(); got != 25 {
		t.Errorf("oldest served = %d; want 25", got)
	}
	// A reopened ledger serves the same snapshots from disk.
	dir := c.app.cfg.Dir
	c.app.Close()
	again, err := NewApp(Config{Dir: dir, SnapshotInterval: 5, SnapshotKeep: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	l2, _ := again.ListSnapshots(context.Background(), &abci.RequestListSnapshots{})
	if len(l2.Snapshots) != 2 || !bytes.Equal(l2.Snapshots[0].Hash, list.Snapshots[0].Hash) {
		t.Fatalf("after reopening: %d snapshots", len(l2.Snapshots))
	}

	s := &snapshots{}
	s.exporting.Store(40)
	if got := s.pruneLimit(45); got != 39 {
		t.Errorf("pruneLimit(45) while exporting 40 = %d; want 39", got)
	}
	if got := s.pruneLimit(30); got != 30 {
		t.Errorf("pruneLimit(30) while exporting 40 = %d; want 30", got)
	}
}

// TestRetainHeight: the retention policy by blocks, by age, and its floors.
func TestRetainHeight(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	times := func(base int64) func(int64) (time.Time, bool) { // a block a second; the store starts at base
		return func(h int64) (time.Time, bool) {
			if h < base {
				return time.Time{}, false
			}
			return t0.Add(time.Duration(h) * time.Second), true
		}
	}
	for _, tc := range []struct {
		name  string
		p     RetainPolicy
		h     int64
		snap  int64
		times func(int64) (time.Time, bool)
		want  int64
	}{
		{"keep all", RetainPolicy{}, 1000, 0, nil, 0},
		{"blocks", RetainPolicy{Blocks: 100}, 1000, 0, nil, 901},
		{"not on the interval", RetainPolicy{Blocks: 100}, 1001, 0, nil, 0},
		{"too young", RetainPolicy{Blocks: 2000}, 1000, 0, nil, 0},
		{"snapshot floor", RetainPolicy{Blocks: 100}, 1000, 500, nil, 500},
		{"evidence blocks", RetainPolicy{Blocks: 100, EvidenceBlocks: 300}, 1000, 0, nil, 700},
		{"age", RetainPolicy{Age: 200 * time.Second}, 1000, 0, times(1), 800},
		{"age, pruned below", RetainPolicy{Age: 200 * time.Second}, 1000, 0, times(600), 800},
		{"blocks reach further", RetainPolicy{Blocks: 300, Age: 200 * time.Second}, 1000, 0, times(1), 701},
		{"evidence age", RetainPolicy{Blocks: 10, EvidenceAge: 50 * time.Second}, 1000, 0, times(1), 950},
		{"age without block times", RetainPolicy{Age: time.Second}, 1000, 0, nil, 0},
	} {
		r := &retention{p: tc.p, blockTime: tc.times}
		if got := r.retainHeight(tc.h, tc.snap); got != tc.want {
			t.Errorf("%s: retainHeight(%d) = %d; want %d", tc.name, tc.h, got, tc.want)
		}
	}
}
