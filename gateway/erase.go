package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// Erasure and retention (docs/readings.md): the gateway destroys reading
// values and keeps what the log's proofs need.
//
//   - Erasure: the ledger records an organisation's erasures of a device's
//     readings timed in [From, To) (record.Erasure). The gateway follows
//     them in order (the last seq applied is kept in its index, written
//     with fsync, so a restart resumes) and erases every log entry of the
//     device with a reading in the range — an envelope is erased whole,
//     the readings it holds outside the range too.
//   - Retention: an organisation's policy may bound how long gateways keep
//     its readings' values (record.Policy.Retention, seconds from a
//     reading's time). Every RetentionInterval (by the gateway's clock)
//     the gateway erases the entries whose newest reading is older than
//     that: an envelope is dropped once all its readings have expired.
//
// An erased entry's bytes leave the data log (datalog.Log.Erase: no file
// of the store keeps them) and its keys leave the readings index; its leaf
// hash stays in the tree, and a Tombstone in its place says why. GET
// /v1/readings/{index} answers it with Withheld code "erased", the entry
// hash and its inclusion and anchor proofs; lists and streams skip it.

// Tombstone reasons.
const (
	ReasonErasure   = "erasure"   // a ledger erasure (Tombstone.Erasure names it)
	ReasonRetention = "retention" // the organisation's retention period
)

// tombstoneVersion is the version of the Tombstone encoding.
const tombstoneVersion = 1

// Tombstone is what stands in the data log where an erased entry was: why
// it was erased and what the audit (verify store) checks that against —
// the device and the time span of its readings, never their values.
type Tombstone struct {
	Version uint8  `cbor:"1,keyasint" json:"version"`
	Reason  string `cbor:"2,keyasint" json:"reason"`            // ReasonErasure or ReasonRetention
	Erasure uint64 `cbor:"3,keyasint,omitempty" json:"erasure"` // the ledger erasure's seq (ReasonErasure)
	Device  string `cbor:"4,keyasint" json:"device"`            // the envelope's device
	// First and Last are the times of the envelope's oldest and newest
	// readings, Unix milliseconds.
	First    int64 `cbor:"5,keyasint" json:"first"`
	Last     int64 `cbor:"6,keyasint" json:"last"`
	Readings int   `cbor:"7,keyasint" json:"readings"`
	// AuthHeight is the entry's authentication height, which its proof
	// still needs (reading.EntryBytes).
	AuthHeight int64 `cbor:"8,keyasint,omitempty" json:"auth_height,omitempty"`
	At         int64 `cbor:"9,keyasint" json:"at"` // when the gateway erased it, Unix ms (its clock)
	// Retention is the period in force (seconds) and PolicyHeight the
	// height of the policy that set it (ReasonRetention).
	Retention    uint64 `cbor:"10,keyasint,omitempty" json:"retention,omitempty"`
	PolicyHeight int64  `cbor:"11,keyasint,omitempty" json:"policy_height,omitempty"`
	// ReceivedAt is the entry's receive time (layout 3, Unix ms), which
	// its proof still needs, as AuthHeight.
	ReceivedAt int64 `cbor:"12,keyasint,omitempty" json:"received_at,omitempty"`
}

// EncodeTombstone is the tombstone's stored form (deterministic CBOR).
func EncodeTombstone(t *Tombstone) ([]byte, error) { return record.Marshal(t) }

// DecodeTombstone decodes and checks a stored tombstone.
func DecodeTombstone(b []byte) (*Tombstone, error) {
	if len(b) > datalog.MaxTombstoneSize {
		return nil, fmt.Errorf("tombstone is %d bytes, at most %d", len(b), datalog.MaxTombstoneSize)
	}
	var t Tombstone
	if err := record.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("tombstone does not decode: %w", err)
	}
	switch {
	case t.Version != tombstoneVersion:
		return nil, fmt.Errorf("tombstone version %d, want %d", t.Version, tombstoneVersion)
	case t.Reason == ReasonErasure && t.Erasure == 0:
		return nil, errors.New("an erasure tombstone names no erasure")
	case t.Reason == ReasonRetention && t.Retention == 0:
		return nil, errors.New("a retention tombstone names no retention period")
	case t.Reason != ReasonErasure && t.Reason != ReasonRetention:
		return nil, fmt.Errorf("tombstone reason %q, want %q or %q", t.Reason, ReasonErasure, ReasonRetention)
	case t.Device == "":
		return nil, errors.New("tombstone names no device")
	case t.Readings < 1 || t.First > t.Last || t.AuthHeight < 0 || t.ReceivedAt < 0:
		return nil, fmt.Errorf("tombstone of %d readings timed %d..%d, auth height %d: inconsistent", t.Readings, t.First, t.Last, t.AuthHeight)
	}
	return &t, nil
}

// Message says why the entry's value is gone, as GET /v1/readings/{index}
// answers it.
func (t *Tombstone) Message() string {
	at := time.UnixMilli(t.At).UTC().Format(time.RFC3339)
	if t.Reason == ReasonRetention {
		return fmt.Sprintf("the value was dropped at %s under the retention of %s of %s's organisation (policy of height %d); the entry's hash and proofs remain",
			at, time.Duration(t.Retention)*time.Second, t.Device, t.PolicyHeight)
	}
	return fmt.Sprintf("the value was erased at %s by erasure %d on the ledger (GET /v1/erasures); the entry's hash and proofs remain", at, t.Erasure)
}

// tombstoneOf is the tombstone of log entry e.
func tombstoneOf(e *reading.Entry, reason string, now time.Time) *Tombstone {
	env := e.Envelope
	t := &Tombstone{Version: tombstoneVersion, Reason: reason, Device: env.Device, Readings: len(env.Readings),
		AuthHeight: e.AuthHeight, ReceivedAt: e.ReceivedAt, At: now.UnixMilli(), First: math.MaxInt64, Last: math.MinInt64}
	for _, r := range env.Readings {
		ms := r.Time.UnixMilli()
		t.First, t.Last = min(t.First, ms), max(t.Last, ms)
	}
	return t
}

// erasedReading is the answer for an erased entry: its hash, inclusion and
// anchor proofs, and why its value is gone.
func (g *Gateway) erasedReading(app *ledger.App, index uint64, ee *datalog.ErasedError) (*proof.Reading, error) {
	t, err := DecodeTombstone(ee.Tombstone)
	if err != nil {
		return nil, fmt.Errorf("log entry %d: %w", index, err)
	}
	return g.publicReading(app, index, t.AuthHeight, t.ReceivedAt, &proof.Unavailable{Code: proof.CodeErased, Message: t.Message()})
}

// publicReading is the public part of entry index, from the log's leaf
// hash without its bytes: its hash, inclusion and anchor proofs, and why
// the rest is withheld (an erased entry; an archived one whose reader the
// read rule refuses). A proof that cannot be made is its ProofError.
func (g *Gateway) publicReading(app *ledger.App, index uint64, authHeight, receivedAt int64, withheld *proof.Unavailable) (*proof.Reading, error) {
	leaf, err := g.data.LeafHash(index)
	if err != nil {
		return nil, err
	}
	p := &proof.Reading{Gateway: g.id, Index: index, EntryHash: leaf[:], AuthHeight: authHeight, ReceivedAt: receivedAt, Withheld: withheld}
	st, err := app.View(0)
	if err == nil {
		err = g.proveAnchor(app, st, p)
	}
	if err != nil {
		code := proof.CodeUnprovable
		if errors.Is(err, proof.ErrNotAnchored) {
			code = proof.CodeNotAnchored
		}
		return &proof.Reading{Gateway: g.id, Index: index, EntryHash: leaf[:], AuthHeight: authHeight, ReceivedAt: receivedAt, Withheld: withheld,
			ProofError: &proof.Unavailable{Code: code, Message: err.Error()}}, nil
	}
	return p, nil
}

// erasePoll is how often the gateway looks for new erasures on the ledger
// (and whether a retention round is due).
const erasePoll = 200 * time.Millisecond

// DefaultRetentionInterval is how often, by default, a gateway drops the
// values its organisations' retention periods expire.
const DefaultRetentionInterval = 10 * time.Minute

// eraser follows the ledger's erasures and runs the retention rounds.
func (g *Gateway) eraser(ctx context.Context) {
	defer g.wg.Done()
	t := time.NewTicker(min(g.cfg.AnchorInterval, erasePoll))
	defer t.Stop()
	var lastErr string
	var lastRound time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := g.applyErasures(ctx)
		if now := g.clock.Now(); err == nil && (lastRound.IsZero() || now.Sub(lastRound) >= g.cfg.RetentionInterval) {
			if err = g.Retain(now); err == nil {
				lastRound = now
			}
		}
		switch {
		case errors.Is(err, ledger.ErrNoState), errors.Is(err, context.Canceled):
		case err != nil && err.Error() != lastErr:
			g.log.Warn("gateway erasure and retention", "err", err)
			lastErr = err.Error()
		case err == nil:
			lastErr = ""
		}
	}
}

// applyErasures applies the ledger's erasures after the last one applied,
// in order, remembering each durably once applied.
func (g *Gateway) applyErasures(ctx context.Context) error {
	st, err := g.ledger.View()
	if err != nil {
		return err
	}
	count, err := st.ErasureCount()
	if err != nil {
		return err
	}
	for {
		done, err := g.index.erasedSeq()
		if err != nil || done >= count {
			return err
		}
		es, err := st.Erasures(done, 64)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return nil
		}
		for _, e := range es {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			n, err := g.applyErasure(&e)
			if err != nil {
				return fmt.Errorf("erasure %d: %w", e.Seq, err)
			}
			if err := g.index.setErasedSeq(e.Seq); err != nil {
				return err
			}
			g.log.Info("erasure applied", "seq", e.Seq, "org", e.Org, "device", e.Device, "from", e.From, "to", e.To, "entries", n)
		}
	}
}

// eraseBatch is how many entries one datalog.Erase takes: each call
// flushes and compacts, so batches are large.
const eraseBatch = 4096

// applyErasure erases the stored entries of e.Device with a reading in
// e's range, and returns how many it erased.
func (g *Gateway) applyErasure(e *record.Erasure) (int, error) {
	to := time.UnixMilli(e.To)
	if e.To == 0 {
		to = time.UnixMilli(math.MaxInt64)
	}
	total := 0
	for {
		// Under storeMu, entries being stored are either indexed before
		// the query or stored after the batch is erased, never in
		// between; ingestion waits for one batch at most.
		g.storeMu.Lock()
		idx, err := g.index.query(e.Device, time.UnixMilli(e.From), to, eraseBatch)
		if err != nil || len(idx) == 0 {
			g.storeMu.Unlock()
			return total, err
		}
		n, err := g.erase(idx, func(*reading.Envelope) bool { return true }, func(ent *reading.Entry) *Tombstone {
			t := tombstoneOf(ent, ReasonErasure, g.clock.Now())
			t.Erasure = e.Seq
			return t
		})
		g.storeMu.Unlock()
		total += n
		g.stats.erased.Add(uint64(n))
		if err != nil {
			return total, err
		}
		if len(idx) < eraseBatch {
			return total, nil
		}
	}
}

// erase erases the entries idx for which keep says so (an entry already
// erased only leaves the index), with tombstones from tomb, and removes
// them from the index. It returns how many it erased.
func (g *Gateway) erase(idx []uint64, want func(*reading.Envelope) bool, tomb func(*reading.Entry) *Tombstone) (int, error) {
	var tombs []datalog.Tomb
	var gone []indexed
	for _, i := range idx {
		raw, err := g.entry(i) // an archived entry is erased too (its tombstone then answers)
		var ee *datalog.ErasedError
		if errors.As(err, &ee) {
			// Erased before a crash left its index keys: remove them.
			t, err := DecodeTombstone(ee.Tombstone)
			if err != nil {
				return 0, fmt.Errorf("log entry %d: %w", i, err)
			}
			gone = append(gone, indexed{device: t.Device, first: t.First, last: t.Last, received: t.ReceivedAt, index: i})
			continue
		}
		if err != nil {
			return 0, err
		}
		ent, err := reading.DecodeEntry(raw)
		if err != nil {
			return 0, fmt.Errorf("log entry %d: %w", i, err)
		}
		if !want(ent.Envelope) {
			continue
		}
		t := tomb(ent)
		b, err := EncodeTombstone(t)
		if err != nil {
			return 0, err
		}
		tombs = append(tombs, datalog.Tomb{Index: i, Tombstone: b})
		gone = append(gone, indexed{device: t.Device, first: t.First, last: t.Last, received: t.ReceivedAt, index: i})
	}
	n := 0
	if len(tombs) > 0 {
		// Marked first: a crash after the erasure still re-cuts (recut.go).
		if m := g.recutBelow(tombs); len(m) > 0 {
			if err := g.index.markRecut(m); err != nil {
				return 0, err
			}
		}
		var err error
		if n, err = g.data.Erase(tombs); err != nil {
			return n, err
		}
	}
	return n, g.index.remove(gone, g.entryAt)
}

// Retain runs one retention round at now: for every device with readings
// stored whose organisation has a retention period, it erases the entries
// whose newest reading is older than now minus the period. The eraser
// runs it every RetentionInterval; tests call it to run a round now.
func (g *Gateway) Retain(now time.Time) error {
	st, err := g.ledger.View()
	if err != nil {
		return err
	}
	devices, err := g.index.devices()
	if err != nil {
		return err
	}
	policies := map[string]*record.Policy{}
	for _, dev := range devices {
		d, err := st.Device(dev)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		p, ok := policies[d.Org]
		if !ok {
			if p, err = st.Policy(d.Org); err != nil {
				return err
			}
			policies[d.Org] = p
		}
		if p.Retention == 0 {
			continue
		}
		if err := g.retainDevice(dev, p, now); err != nil {
			return fmt.Errorf("retention of %s: %w", dev, err)
		}
	}
	return nil
}

// retainDevice drops a device's expired entries under policy p.
func (g *Gateway) retainDevice(dev string, p *record.Policy, now time.Time) error {
	cutoff := now.Add(-time.Duration(p.Retention) * time.Second)
	kept := map[uint64]bool{} // entries with a reading older than cutoff and one newer: kept for now
	for {
		g.storeMu.Lock() // as in applyErasure: one batch at a time
		idx, err := g.index.queryExcept(dev, time.UnixMilli(0), cutoff, eraseBatch, kept)
		if err != nil || len(idx) == 0 {
			g.storeMu.Unlock()
			return err
		}
		n, err := g.erase(idx, func(env *reading.Envelope) bool {
			for _, r := range env.Readings {
				if !r.Time.Before(cutoff) {
					return false
				}
			}
			return true
		}, func(e *reading.Entry) *Tombstone {
			t := tombstoneOf(e, ReasonRetention, now)
			t.Retention, t.PolicyHeight = p.Retention, p.Height
			return t
		})
		g.storeMu.Unlock()
		g.stats.expired.Add(uint64(n))
		if err != nil {
			return err
		}
		for _, i := range idx {
			if _, err := g.data.Tombstone(i); errors.Is(err, datalog.ErrNotFound) {
				kept[i] = true
			}
		}
		if len(idx) < eraseBatch {
			return nil
		}
	}
}

// indexed is an erased entry whose keys leave the index: its device, the
// time span of its readings and its receive time (Unix ms), and its log
// index.
type indexed struct {
	device      string
	first, last int64
	received    int64
	index       uint64
}

var keyErasedSeq = []byte("m/erased")

// erasedSeq is the seq of the last ledger erasure the gateway applied.
func (x *index) erasedSeq() (uint64, error) { return x.u64(keyErasedSeq, "index erasure mark") }

// setErasedSeq records, durably, that erasure seq was applied.
func (x *index) setErasedSeq(seq uint64) error {
	return x.db.Set(keyErasedSeq, binary.BigEndian.AppendUint64(nil, seq), pebble.Sync)
}

// remove deletes the index keys of erased entries and computes again the
// roll-ups they were in, in one batch (entryAt answers nil for an erased
// entry).
func (x *index) remove(gone []indexed, entryAt func(uint64) (*reading.Entry, error)) error {
	if len(gone) == 0 {
		return nil
	}
	b := x.db.NewBatch()
	defer b.Close()
	skip := map[uint64]bool{}
	for _, e := range gone {
		skip[e.index] = true
		if e.received != 0 {
			if err := b.Delete(receivedKey(e.device, e.received, e.index), nil); err != nil {
				return err
			}
		}
		it, err := x.db.NewIter(&pebble.IterOptions{
			LowerBound: readingKey(e.device, time.UnixMilli(e.first), 0),
			UpperBound: readingKey(e.device, time.UnixMilli(e.last), math.MaxUint64),
		})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			k := it.Key()
			if len(k) >= 8 && binary.BigEndian.Uint64(k[len(k)-8:]) == e.index {
				if err := b.Delete(k, nil); err != nil {
					it.Close()
					return err
				}
			}
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
	}
	if err := x.unfold(b, gone); err != nil {
		return err
	}
	if x.rollups {
		if err := x.unroll(b, gone, skip, entryAt); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// devices lists the devices the index holds readings of (their replay
// state), in order.
func (x *index) devices() ([]string, error) {
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte("s/"), UpperBound: []byte("s0")})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		out = append(out, string(it.Key()[2:]))
	}
	return out, it.Error()
}
