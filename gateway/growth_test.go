package gateway

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
)

// TestGrowth measures what a gateway's disk holds per simulated day with
// and without archiving, on a fake clock: each day, envelopesPerDay
// envelopes of 10 readings (values of 32 random bytes) are ingested and
// the clock moves a day; archiving (segments of 1,000 entries, age one
// day, no pins waited for: the segments go to an in-memory store) runs
// until it has caught up. It reports, per day, the data log's and the
// readings index's files, and the ledger's state and block store (one
// validator, every block kept; they grow with blocks, which come by the
// wall clock, not with the simulated days) — docs/benchmarks.md quotes
// its table.
// With THINGNET_SOAK_DAYS=30 (make soak) it runs an accelerated month
// and checks that the log's files stay under the bound: what stays per
// entry (its hashes) plus one day and a segment of entries in full.
func TestGrowth(t *testing.T) {
	days := 4
	if v := os.Getenv("THINGNET_SOAK_DAYS"); v != "" {
		days, _ = strconv.Atoi(v)
	} else if os.Getenv("THINGNET_BENCH") == "" {
		t.Skip("writes tens of thousands of readings: run with THINGNET_BENCH=1 (or make soak)")
	}
	for _, archive := range []bool{false, true} {
		if os.Getenv("THINGNET_SOAK_DAYS") != "" && !archive {
			continue
		}
		name := "plain"
		if archive {
			name = "archiving"
		}
		t.Run(name, func(t *testing.T) { growth(t, days, archive) })
	}
}

func growth(t *testing.T, days int, archive bool) {
	const (
		envelopesPerDay = 2000
		perEnv          = 10
		segment         = 1000
	)
	tn := startTestNet(t)
	ctx := testutil.Context(t, 30*time.Minute)
	clock := &fakeClock{now: time.Now().Truncate(time.Second)}
	tn.gw.Close()
	wide := wideLimits
	gw, err := New(Config{Dir: filepath.Join(tn.dir, "gateway"), Key: tn.gwKey, AnchorInterval: 100 * time.Millisecond, NoSync: true,
		Clock: clock, Limits: wide}, NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
	if err != nil {
		t.Fatal(err)
	}
	tn.gw = gw
	t.Cleanup(func() { gw.Close() })
	a := &archiver{cfg: ArchiveConfig{Archive: true, Age: 24 * time.Hour, SegmentEntries: segment, MinPins: NoPins}, store: &memSegments{files: map[string][]byte{}}, pinned: map[string]bool{}}
	a.cfg.defaults()
	gw.arch.Store(a)

	size := testutil.DirBytes
	chainHome := filepath.Join(tn.dir, "net", "node0")
	ledgerDir, blocks := filepath.Join(chainHome, "data", "ledger"), filepath.Join(chainHome, "data", "blockstore.db")
	if _, err := os.Stat(ledgerDir); err != nil {
		t.Fatalf("no ledger store at %s: %v", ledgerDir, err)
	}
	logDir, indexDir := filepath.Join(tn.dir, "gateway", "datalog"), filepath.Join(tn.dir, "gateway", "index")
	seq := uint64(0)
	var maxLog int64
	t.Logf("%4s %9s %9s %10s %10s %10s %10s %7s", "day", "entries", "archived", "log", "index", "ledger", "blocks", "height")
	for day := 1; day <= days; day++ {
		for range envelopesPerDay {
			rs := make([]reading.Reading, perEnv)
			for k := range rs {
				seq++
				b := make([]byte, 32)
				rand.Read(b)
				rs[k] = reading.Reading{Seq: seq, Time: clock.Now(), ContentType: "application/octet-stream", Bytes: b}
			}
			raw, err := reading.Sign(tn.sensor, tn.sensor.ID(), rs...)
			if err != nil {
				t.Fatal(err)
			}
			if err := gw.Ingest(ctx, "", raw, "127.0.0.1"); err != nil {
				t.Fatalf("day %d: %v", day, err)
			}
		}
		clock.Advance(24 * time.Hour)
		if archive {
			catchUp(t, ctx, gw, a, uint64(day-1)*envelopesPerDay/segment*segment)
		}
		lg := size(logDir)
		maxLog = max(maxLog, lg)
		done, _ := gw.data.LastArchived()
		t.Logf("%4d %9d %9d %9.2fM %9.2fM %9.2fM %9.2fM %7d", day, gw.data.Size(), done.End(), float64(lg)/1e6, float64(size(indexDir))/1e6, float64(size(ledgerDir))/1e6, float64(size(blocks))/1e6, tn.app.Height())
	}
	if archive {
		// What stays per archived entry: its hashes (leaf and interior
		// nodes, about 2 × 42 bytes with keys); in full: the last day and
		// the segment not yet cut, each entry about 1 KB (10 readings of
		// 32 bytes, envelope, signature). Pebble's unflushed and
		// uncompacted files come on top: twice that.
		entries := int64(gw.data.Size())
		bound := 2 * (entries*100 + (envelopesPerDay+segment)*1200)
		t.Logf("largest log: %.2f MB; bound %.2f MB", float64(maxLog)/1e6, float64(bound)/1e6)
		if maxLog > bound {
			t.Fatalf("the log's files reached %d bytes, over the bound %d", maxLog, bound)
		}
	}
}

// catchUp runs archiving rounds until entries up to want are archived.
func catchUp(t *testing.T, ctx context.Context, gw *Gateway, a *archiver, want uint64) {
	t.Helper()
	for {
		done, err := gw.data.LastArchived()
		if err != nil {
			t.Fatal(err)
		}
		if done.End() >= want {
			return
		}
		if err := gw.archiveRound(ctx, a); err != nil && !strings.Contains(err.Error(), "not all anchored") {
			t.Fatalf("archiving: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("archiving stuck at %d of %d", done.End(), want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
