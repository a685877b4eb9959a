package gateway

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// secret is a reading of random (incompressible, unique) bytes at t: a
// search of the gateway's raw files finds them if they are there.
func secret(seq uint64, t time.Time) (reading.Reading, []byte) {
	b := make([]byte, 64)
	rand.Read(b)
	return reading.Reading{Seq: seq, Time: t, ContentType: "application/octet-stream", Bytes: b}, b
}

// filesHolding returns the files under dir whose bytes contain b.
func filesHolding(t *testing.T, dir string, b []byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted while we walk
		}
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if bytes.Contains(raw, b) {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sendSigned signs rs as the sensor and posts them; it returns the index.
func (tn *testNet) sendSigned(t *testing.T, rs ...reading.Reading) uint64 {
	t.Helper()
	raw, err := reading.Sign(tn.sensor, tn.sensor.ID(), rs...)
	if err != nil {
		t.Fatal(err)
	}
	i, err := tn.post(t, raw)
	if err != nil {
		t.Fatalf("POST reading: %v", err)
	}
	return i
}

// listed returns the log indexes GET /v1/readings lists for the sensor.
func (tn *testNet) listed(t *testing.T) map[uint64]int {
	t.Helper()
	var out struct{ Items []client.ReadingItem }
	if err := tn.client.Get(testutil.Context(t, time.Minute), "/v1/readings?device="+url.QueryEscape(tn.sensor.ID()), &out); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]int{}
	for _, it := range out.Items {
		got[it.Index]++
	}
	return got
}

// TestErasure erases a time range of the sensor's readings on the ledger
// and checks the gateway: the entries with a reading in the range (an
// envelope straddling its end too) answer "erased" with the erasure's
// seq, and their anchors and inclusion still verify; the others verify
// end to end and are listed; no file of the gateway's directory holds an
// erased value; a restart keeps it all; and the store audit reports the
// erased entries as erased, and a tombstone no erasure backs as altered.
func TestErasure(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, 2*time.Minute)
	base := time.UnixMilli(1_700_000_000_000)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	r1, v1 := secret(1, at(1))
	r2, v2 := secret(2, at(2))
	r3, v3 := secret(3, at(3))
	r4, v4 := secret(4, at(4))
	r5, v5 := secret(5, at(5))
	i1 := tn.sendSigned(t, r1)
	i2 := tn.sendSigned(t, r2)
	i3 := tn.sendSigned(t, r3, r4) // straddles the range's end: erased whole
	i5 := tn.sendSigned(t, r5)
	for _, i := range []uint64{i1, i2, i3, i5} {
		tn.proof(t, i)
	}
	res, err := tn.client.Send(ctx, tn.admin, "", &record.DataErase{Org: "acme", Device: tn.sensor.ID(), From: at(2).UnixMilli(), To: at(4).UnixMilli(), Reason: "subject's request"}, true)
	if err != nil {
		t.Fatalf("data.erase: %v", err)
	}
	testutil.WaitFor(t, ctx, "the gateway to apply erasure 1", func() bool { return tn.gw.Stats().Erased == 2 })
	t.Logf("erasure committed at height %d, applied", res.Height)

	check := func(when string) {
		t.Helper()
		checker := client.Checker{Client: tn.client, ChainID: "gw-test"}
		for _, i := range []uint64{i2, i3} {
			p := tn.proof(t, i)
			if p.Withheld == nil || p.Withheld.Code != proof.CodeErased || !strings.Contains(p.Withheld.Message, "erasure 1 ") || p.Envelope != nil {
				t.Fatalf("%s: entry %d answers %+v; want withheld erased by erasure 1, no envelope", when, i, p.Withheld)
			}
			if _, err := proof.VerifyReading(ctx, checker, p); !errors.Is(err, proof.ErrWithheld) {
				t.Fatalf("%s: VerifyReading(erased %d) = %v; want ErrWithheld", when, i, err)
			}
			if a, err := proof.VerifyAnchored(ctx, checker, p); err != nil || !bytes.Equal(a.EntryHash, p.EntryHash) {
				t.Fatalf("%s: VerifyAnchored(erased %d) = %v; want its hash included under the anchor", when, i, err)
			}
		}
		for _, i := range []uint64{i1, i5} {
			if _, err := tn.client.VerifyReading(ctx, "gw-test", tn.proof(t, i)); err != nil {
				t.Fatalf("%s: VerifyReading(%d) = %v", when, i, err)
			}
		}
		if got := tn.listed(t); len(got) != 2 || got[i1] != 1 || got[i5] != 1 {
			t.Fatalf("%s: listed %v; want only entries %d and %d", when, got, i1, i5)
		}
		for _, v := range [][]byte{v2, v3, v4} {
			testutil.WaitFor(t, ctx, "no file to hold an erased value", func() bool { return len(filesHolding(t, tn.dir, v)) == 0 })
		}
		for _, v := range [][]byte{v1, v5} {
			if len(filesHolding(t, filepath.Join(tn.dir, "gateway"), v)) == 0 {
				t.Fatalf("%s: a value that was not erased is in no file: the search sees nothing", when)
			}
		}
	}
	check("erased")

	// The audit of the stopped gateway: erased, not altered.
	gwDir := filepath.Join(tn.dir, "gateway")
	if err := tn.gw.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := tn.app.View(0)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := CheckLog(gwDir, tn.gwKey.ID(), st)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 || len(rep.Erased) != 2 || rep.Erased[0].Index != i2 || rep.Erased[0].Erasure != 1 || rep.Erased[1].Index != i3 {
		t.Fatalf("CheckLog = findings %+v, erased %+v; want entries %d and %d erased by erasure 1, nothing altered", rep.Findings, rep.Erased, i2, i3)
	}

	// A restart: still erased, the erasure not applied twice.
	tn.startGateway(t)
	if seq, err := tn.gw.index.erasedSeq(); err != nil || seq != 1 {
		t.Fatalf("erasedSeq after restart = %d, %v; want 1", seq, err)
	}
	check("after a restart")

	// The index rebuilt from the log (an operator removed it): erased
	// entries are skipped, and the erasures are applied again, erasing
	// nothing more.
	if err := tn.gw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(gwDir, "index")); err != nil {
		t.Fatal(err)
	}
	tn.startGateway(t)
	testutil.WaitFor(t, ctx, "the erasures to be followed again", func() bool {
		seq, err := tn.gw.index.erasedSeq()
		return err == nil && seq == 1
	})
	if n := tn.gw.Stats().Erased; n != 0 {
		t.Fatalf("a rebuilt index erased %d entries again", n)
	}
	check("with the index rebuilt")

	// Tampering dressed as erasure: entry i1 deleted with a tombstone
	// naming an erasure the ledger does not hold, entry i5 with one naming
	// erasure 1, whose range does not cover it.
	if err := tn.gw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := datalog.Open(datalog.Config{Dir: filepath.Join(gwDir, "datalog")})
	if err != nil {
		t.Fatal(err)
	}
	fake := func(i uint64, seq uint64, first time.Time) datalog.Tomb {
		b, err := EncodeTombstone(&Tombstone{Version: tombstoneVersion, Reason: ReasonErasure, Erasure: seq, Device: tn.sensor.ID(), First: first.UnixMilli(), Last: first.UnixMilli(), Readings: 1})
		if err != nil {
			t.Fatal(err)
		}
		return datalog.Tomb{Index: i, Tombstone: b}
	}
	if _, err := l.Erase([]datalog.Tomb{fake(i1, 7, at(1)), fake(i5, 1, at(5))}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	rep, err = CheckLog(gwDir, tn.gwKey.ID(), st)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Erased) != 4 || len(rep.Findings) != 2 || rep.Findings[0].Index != i1 || rep.Findings[0].What != datalog.FindTombstone ||
		rep.Findings[1].Index != i5 || rep.Findings[1].What != datalog.FindTombstone {
		t.Fatalf("CheckLog of forged tombstones = findings %+v, erased %+v; want %d and %d reported as tombstones no erasure backs", rep.Findings, rep.Erased, i1, i5)
	}
	for _, f := range rep.Findings {
		t.Logf("found: entry %d %s: %s", f.Index, f.What, f.Detail)
	}
}

// fakeClock is a ratelimit.Clock that moves when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestRetention sets a retention of 60 s for acme and runs the gateway on
// a fake clock with a retention round every 30 s of it: each round drops
// the entries whose newest reading is older than the clock minus 60 s, no
// sooner (an envelope with one expired reading and one not is kept), and
// counts them; a dropped entry answers "erased" with the retention, its
// value in no file, its anchor and inclusion still verifying.
func TestRetention(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, 2*time.Minute)
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.OrgPolicy{Org: "acme", Retention: 60}, true); err != nil {
		t.Fatalf("org.policy: %v", err)
	}
	base := time.Now().Truncate(time.Millisecond)
	clock := &fakeClock{now: base}
	tn.gw.Close()
	gw, err := New(Config{Dir: filepath.Join(tn.dir, "gateway"), Key: tn.gwKey, AnchorInterval: 100 * time.Millisecond,
		Clock: clock, RetentionInterval: 30 * time.Second}, NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
	if err != nil {
		t.Fatal(err)
	}
	tn.gw = gw
	t.Cleanup(func() { gw.Close() })

	ra, va := secret(1, base.Add(-50*time.Second))
	rb1, vb1 := secret(2, base.Add(-50*time.Second))
	rb2, _ := secret(3, base)
	rc, vc := secret(4, base.Add(20*time.Second))
	ia := tn.sendSigned(t, ra)
	ib := tn.sendSigned(t, rb1, rb2)
	ic := tn.sendSigned(t, rc)
	for _, i := range []uint64{ia, ib, ic} {
		tn.proof(t, i)
	}
	round := func(advance time.Duration, expired uint64, gone, kept [][]byte) {
		t.Helper()
		clock.Advance(advance)
		testutil.WaitFor(t, ctx, "a retention round", func() bool { return gw.Stats().Expired >= expired })
		if n := gw.Stats().Expired; n != expired {
			t.Fatalf("at base+%v: %d entries expired; want %d", clock.Now().Sub(base), n, expired)
		}
		for _, v := range gone {
			testutil.WaitFor(t, ctx, "no file to hold an expired value", func() bool { return len(filesHolding(t, tn.dir, v)) == 0 })
		}
		for _, v := range kept {
			if len(filesHolding(t, filepath.Join(tn.dir, "gateway"), v)) == 0 {
				t.Fatalf("at base+%v: a value still in retention is in no file", clock.Now().Sub(base))
			}
		}
	}
	round(30*time.Second, 1, [][]byte{va}, [][]byte{vb1, vc})      // cutoff base-30s: a only; b has a reading at base
	round(31*time.Second, 2, [][]byte{va, vb1}, [][]byte{vc})      // cutoff base+1s: b
	round(30*time.Second, 3, [][]byte{va, vb1, vc}, [][]byte(nil)) // cutoff base+31s: c

	checker := client.Checker{Client: tn.client, ChainID: "gw-test"}
	for _, i := range []uint64{ia, ib, ic} {
		p, err := gw.Reading(tn.app, i)
		if err != nil || p.Withheld == nil || p.Withheld.Code != proof.CodeErased || !strings.Contains(p.Withheld.Message, "retention of 1m0s") {
			t.Fatalf("expired entry %d: %+v, %v; want erased under the retention", i, p, err)
		}
		if _, err := proof.VerifyAnchored(ctx, checker, p); err != nil {
			t.Fatalf("VerifyAnchored(expired %d) = %v", i, err)
		}
	}
	gw.Close()
	st, _ := tn.app.View(0)
	rep, err := CheckLog(filepath.Join(tn.dir, "gateway"), tn.gwKey.ID(), st)
	if err != nil || len(rep.Findings) != 0 || len(rep.Erased) != 3 || rep.Erased[0].Reason != ReasonRetention {
		t.Fatalf("CheckLog after retention = %+v, %v; want 3 expired entries, nothing altered", rep, err)
	}
	// Retention tombstones the ledger does not back.
	pol, _ := st.Policy("acme")
	good := Tombstone{Version: 1, Reason: ReasonRetention, Retention: 60, PolicyHeight: pol.Height, Device: tn.sensor.ID(),
		First: base.UnixMilli(), Last: base.UnixMilli(), Readings: 1, At: base.Add(61 * time.Second).UnixMilli()}
	if why := backed(st, &good); why != "" {
		t.Fatalf("a retention tombstone the policy backs: %s", why)
	}
	for name, mod := range map[string]func(*Tombstone){
		"early":          func(t *Tombstone) { t.At = base.Add(59 * time.Second).UnixMilli() },
		"other period":   func(t *Tombstone) { t.Retention = 3600 },
		"future policy":  func(t *Tombstone) { t.PolicyHeight = pol.Height + 100 },
		"no policy":      func(t *Tombstone) { t.PolicyHeight = 0 },
		"unknown device": func(t *Tombstone) { t.Device = tn.admin.ID() },
	} {
		forged := good
		mod(&forged)
		if why := backed(st, &forged); why == "" {
			t.Errorf("forged retention tombstone (%s) passes", name)
		}
	}
}

// FuzzDecodeTombstone checks that DecodeTombstone never panics and that
// what it accepts encodes back to what decodes the same.
func FuzzDecodeTombstone(f *testing.F) {
	good := func(t *Tombstone) []byte {
		b, err := EncodeTombstone(t)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	dev := testutil.Key(f, identity.Ed25519).ID()
	f.Add(good(&Tombstone{Version: 1, Reason: ReasonErasure, Erasure: 3, Device: dev, First: 1, Last: 9, Readings: 2, AuthHeight: 4, At: 1_700_000_000_000}))
	f.Add(good(&Tombstone{Version: 1, Reason: ReasonRetention, Retention: 60, PolicyHeight: 7, Device: dev, First: 5, Last: 5, Readings: 1, At: 1}))
	f.Add(good(&Tombstone{Version: 2, Reason: "other", Device: dev, Readings: 1}))
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := DecodeTombstone(b)
		if err != nil {
			return
		}
		if ts.Message() == "" {
			t.Fatal("empty message")
		}
		again, err := EncodeTombstone(ts)
		if err != nil {
			t.Fatalf("EncodeTombstone of a decoded tombstone: %v", err)
		}
		ts2, err := DecodeTombstone(again)
		if err != nil || *ts2 != *ts {
			t.Fatalf("re-decoded %+v, %v; want %+v", ts2, err, ts)
		}
	})
}

// TestRetentionDiskBound writes readings at a steady rate under a
// retention of 60 s (by the gateway's fake clock, a retention round every
// 10 s of it) and measures the data log's files: the space they take
// levels off at about retention × rate instead of growing with the log.
// docs/benchmarks.md quotes its table; it runs with THINGNET_BENCH=1
// (make bench-retention): about a minute on a busy 2-core machine.
func TestRetentionDiskBound(t *testing.T) {
	const (
		retention = 60  // seconds
		envPerSec = 10  // envelopes a second
		perEnv    = 10  // readings an envelope
		valueSize = 256 // bytes of each reading's value
		seconds   = 300 // simulated
		round     = 10  // seconds between retention rounds
	)
	if os.Getenv("THINGNET_BENCH") == "" {
		t.Skip("writes 30,000 readings: run with THINGNET_BENCH=1 (make bench-retention)")
	}
	tn := startTestNet(t)
	ctx := testutil.Context(t, 5*time.Minute)
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.OrgPolicy{Org: "acme", Retention: retention}, true); err != nil {
		t.Fatalf("org.policy: %v", err)
	}
	clock := &fakeClock{now: time.Now().Truncate(time.Second)}
	tn.gw.Close()
	wide := wideLimits
	gw, err := New(Config{Dir: filepath.Join(tn.dir, "gateway"), Key: tn.gwKey, AnchorInterval: 100 * time.Millisecond, NoSync: true,
		Clock: clock, RetentionInterval: 1000 * time.Hour, Limits: wide}, NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
	if err != nil {
		t.Fatal(err)
	}
	tn.gw = gw
	t.Cleanup(func() { gw.Close() })
	logDir := filepath.Join(tn.dir, "gateway", "datalog")
	size := func() (sst, all int64) {
		filepath.WalkDir(logDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if info, err := d.Info(); err == nil {
				all += info.Size()
				if strings.HasSuffix(p, ".sst") {
					sst += info.Size()
				}
			}
			return nil
		})
		return sst, all
	}
	seq := uint64(0)
	var written int64
	var samples []int64
	var rounds, longest time.Duration // time spent in retention rounds
	t.Logf("%8s %10s %12s %12s %12s", "second", "readings", "values sent", "log files", "sstables")
	for s := 1; s <= seconds; s++ {
		for range envPerSec {
			rs := make([]reading.Reading, perEnv)
			for k := range rs {
				seq++
				rs[k], _ = secret(seq, clock.Now().Add(time.Duration(k)*time.Millisecond))
				rs[k].Bytes = append(rs[k].Bytes, make([]byte, valueSize-len(rs[k].Bytes))...)
				rand.Read(rs[k].Bytes)
				written += valueSize
			}
			raw, err := reading.Sign(tn.sensor, tn.sensor.ID(), rs...)
			if err != nil {
				t.Fatal(err)
			}
			if err := gw.Ingest(ctx, "", raw, "127.0.0.1"); err != nil {
				t.Fatalf("second %d: %v", s, err)
			}
		}
		clock.Advance(time.Second)
		if s%round == 0 {
			start := time.Now()
			if err := gw.Retain(clock.Now()); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			rounds, longest = rounds+took, max(longest, took)
			sst, all := size()
			samples = append(samples, all)
			if s%(3*round) == 0 {
				t.Logf("%8d %10d %11.1fM %11.2fM %11.2fM", s, seq, float64(written)/1e6, float64(all)/1e6, float64(sst)/1e6)
			}
		}
	}
	// Steady state: once the first values expire (after retention plus a
	// round), the files stay within a band; without retention they would
	// grow with every second.
	steady := slices.Clone(samples[(retention+2*round)/round:])
	slices.Sort(steady)
	lo, median, hi := steady[0], steady[len(steady)/2], steady[len(steady)-1]
	bound := int64(retention+round) * envPerSec * perEnv * valueSize
	t.Logf("steady state: log files %.2f MB (median), %.2f..%.2f MB (the peaks are flushed files not yet compacted); retention × rate = %.2f MB of values (%.2f MB with one round more); %.1f MB sent; %d entries dropped",
		float64(median)/1e6, float64(lo)/1e6, float64(hi)/1e6, float64(retention*envPerSec*perEnv*valueSize)/1e6, float64(bound)/1e6, float64(written)/1e6, gw.Stats().Expired)
	t.Logf("retention rounds: %v on average (%d entries each), longest %v", rounds/time.Duration(seconds/round), envPerSec*round, longest)
	// The files hold the values with their envelopes (signature, seq,
	// time, content type), the tree's hashes and the tombstones.
	if median > 3*bound/2 || hi > 4*bound {
		t.Fatalf("the log's files hold %d bytes (median; peak %d), more than 1.5 × retention × rate (%d): not bounded", median, hi, bound)
	}
	if last := samples[len(samples)-1]; last > written/2 {
		t.Fatalf("the log's files hold %d bytes of %d written: retention does not free space", last, written)
	}
}
