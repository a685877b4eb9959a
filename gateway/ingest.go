package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thingnet/thingnet/gateway/edge"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
)

// job is one envelope waiting for batch verification and storage.
type job struct {
	env *reading.Envelope
	pub identity.PublicKey
	// auth is the height of the committed state that authenticated the
	// signer (active, with key pub); stored in the log entry.
	auth int64
	// received is when the gateway received it (its clock), stored in the
	// log entry (layout 3).
	received time.Time
	index    uint64     // log index, once stored
	done     chan error // buffered, 1
}

// stats are the gateway's counters.
type stats struct {
	accepted, rejected, limited, overloaded, stored, offenders atomic.Uint64
	erased, expired                                            atomic.Uint64
	archived, archiveUnavailable                               atomic.Uint64 // archive.go
}

// Stats is a snapshot of the gateway's counters.
type Stats struct {
	Accepted   uint64 // envelopes stored
	Readings   uint64 // readings stored (a batch envelope holds several)
	Rejected   uint64 // malformed, unknown or inactive device, bad signature, replay
	Limited    uint64 // refused by the rate limits
	Overloaded uint64 // refused because the verification queue was full
	Offenders  uint64 // devices reported for exceeding their limits again and again
	Erased     uint64 // log entries whose values ledger erasures destroyed (erase.go)
	Expired    uint64 // log entries whose values were dropped under retention periods
	// Archived counts log entries whose bytes were dropped here once
	// their segment was published and pinned (archive.go);
	// ArchiveUnavailable the reads that found a segment lost or altered.
	Archived, ArchiveUnavailable uint64
}

// Stats returns the counters.
func (g *Gateway) Stats() Stats {
	return Stats{
		Accepted: g.stats.accepted.Load(), Readings: g.stats.stored.Load(), Rejected: g.stats.rejected.Load(),
		Limited: g.stats.limited.Load(), Overloaded: g.stats.overloaded.Load(), Offenders: g.stats.offenders.Load(),
		Erased: g.stats.erased.Load(), Expired: g.stats.expired.Load(),
		Archived: g.stats.archived.Load(), ArchiveUnavailable: g.stats.archiveUnavailable.Load(),
	}
}

// Ingest is the gateway as the transports' edge.Ingestor: it takes a
// signed reading envelope from deviceID (the device the transport
// authenticated, and charged for this message under edge.DeviceKey; ""
// when the transport authenticates none, as CoAP and plain HTTP) coming
// from source (an address). It returns nil once the envelope is durably
// stored in the data log, and an error wrapping ErrRejected, ErrOverloaded,
// ErrDuplicate or ErrClosed otherwise. Checks run cheapest first: rate
// limits, size and decoding, the device's ledger record; the signature is
// verified last, in batches.
func (g *Gateway) Ingest(ctx context.Context, deviceID string, raw []byte, source string) error {
	_, err := g.ingest(ctx, deviceID, raw, deviceID != "")
	return err
}

// IngestIndex is Ingest for callers other than a transport that charged
// the device (the HTTP route, relays, tests): it charges the envelope's
// device itself, whatever deviceID, and returns the envelope's index in the
// data log. The transports bound what a source address may cost before
// they call either (per connection for MQTT, per datagram for CoAP, per
// request for HTTP).
func (g *Gateway) IngestIndex(ctx context.Context, deviceID string, raw []byte, source string) (uint64, error) {
	return g.ingest(ctx, deviceID, raw, false)
}

// ingest stores one envelope. charged says that deviceID (then set) was
// already charged for it: each envelope is charged to its device once
// (package edge).
func (g *Gateway) ingest(ctx context.Context, deviceID string, raw []byte, charged bool) (uint64, error) {
	j, err := g.prepare(deviceID, raw, charged)
	if err != nil {
		return 0, err
	}
	select {
	case g.jobs <- j:
	default:
		g.stats.overloaded.Add(1)
		return 0, fmt.Errorf("%w: %d readings waiting", ErrOverloaded, cap(g.jobs))
	}
	select {
	case err := <-j.done:
		return j.index, err
	case <-ctx.Done():
		// The reading may still be stored; the client did not wait to know.
		return 0, ctx.Err()
	}
}

// Submit is Ingest without the wait (edge.Pipeliner): the MQTT broker keeps
// many envelopes of one connection in flight with it. Where Ingest refuses
// an envelope when the queue is full, Submit waits for room until ctx is
// done: a transport's client is held back rather than refused while later
// envelopes of its device get stored (a refusal would then be final: the
// later sequence numbers make the resent envelope a replay).
func (g *Gateway) Submit(ctx context.Context, deviceID string, raw []byte, source string) <-chan error {
	j, err := g.prepare(deviceID, raw, deviceID != "")
	if err != nil {
		return answered(err)
	}
	select {
	case g.jobs <- j:
		return j.done
	default:
	}
	select {
	case g.jobs <- j:
		return j.done
	case <-g.done:
		return answered(ErrClosed)
	case <-ctx.Done():
		g.stats.overloaded.Add(1)
		return answered(fmt.Errorf("%w: %d readings waiting: %v", ErrOverloaded, cap(g.jobs), ctx.Err()))
	}
}

// answered is a job's answer channel holding err already.
func answered(err error) <-chan error {
	c := make(chan error, 1)
	c <- err
	return c
}

// prepare runs an envelope's checks that come before its signature, cheapest
// first, and returns its job.
func (g *Gateway) prepare(deviceID string, raw []byte, charged bool) (*job, error) {
	env, err := reading.Decode(raw)
	if err != nil {
		g.stats.rejected.Add(1)
		return nil, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	if deviceID != "" && env.Device != deviceID {
		g.stats.rejected.Add(1)
		return nil, fmt.Errorf("%w: %s published a reading of %s", ErrRejected, deviceID, env.Device)
	}
	if !charged {
		if d := g.limiter.AllowMessage(edge.DeviceKey(env.Device), len(raw)); !d.Allowed {
			g.stats.limited.Add(1)
			return nil, fmt.Errorf("%w: device %s: %s", ErrRejected, env.Device, d.Reason)
		}
	}
	now := g.clock.Now()
	if err := g.checkTime(env, now); err != nil {
		g.stats.rejected.Add(1)
		return nil, err
	}
	pub, auth, err := g.signerOf(env)
	if err != nil {
		g.stats.rejected.Add(1)
		return nil, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	return &job{env: env, pub: pub, auth: auth, received: now, done: make(chan error, 1)}, nil
}

// signerOf returns the key that must have signed env: the device's, or for
// an attested device its gateway's; and the height of the committed state
// that says so, which the log entry records.
func (g *Gateway) signerOf(env *reading.Envelope) (identity.PublicKey, int64, error) {
	st, err := g.ledger.View()
	if err != nil {
		return identity.PublicKey{}, 0, err
	}
	d, pub, err := g.activeDevice(st, env.Device)
	if err != nil {
		return pub, 0, err
	}
	if env.Attester == "" {
		if d.AttestedBy != "" {
			return pub, 0, fmt.Errorf("device %s is attested by %s; its readings must be signed by that gateway", d.ID, d.AttestedBy)
		}
		return pub, st.Height, nil
	}
	if env.Attester != d.AttestedBy {
		return pub, 0, fmt.Errorf("%s does not attest device %s", env.Attester, d.ID)
	}
	_, gpub, err := g.activeDevice(st, env.Attester)
	return gpub, st.Height, err
}

// minBatch is the batch size below which the verifier waits (up to
// BatchWindow) for more envelopes: small batches lose the batch
// verification speed-up, waiting costs latency.
const minBatch = 16

// verifier batches queued envelopes and verifies each batch's signatures on
// all cores; a second goroutine, the committer, drops replays, stores the
// rest in one durable append and answers each. The two overlap: while one
// batch is appended and fsynced, the next is verified. Batches reach the
// committer in the order their envelopes were queued, so one client's
// envelopes are stored in the order it sent them.
func (g *Gateway) verifier(ctx context.Context) {
	defer g.wg.Done()
	verified := make(chan verifiedBatch, 1)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		for vb := range verified {
			g.commit(vb.jobs, vb.valid)
		}
	}()
	defer func() {
		close(verified)
		<-committed // a verified batch is still stored: Close waits for it
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var batch []*job
		select {
		case <-ctx.Done():
			g.drain(nil)
			return
		case j := <-g.jobs:
			batch = append(make([]*job, 0, g.cfg.MaxBatch), j)
		}
		// Take what is queued; wait up to BatchWindow for more only while
		// the batch is small (under load the queue refills while the
		// previous batch is verified and stored, so batches size themselves).
		timer.Reset(g.cfg.BatchWindow)
	fill:
		for len(batch) < g.cfg.MaxBatch {
			select {
			case j := <-g.jobs:
				batch = append(batch, j)
				continue
			default:
			}
			if len(batch) >= minBatch {
				break
			}
			select {
			case j := <-g.jobs:
				batch = append(batch, j)
			case <-timer.C:
				break fill
			case <-ctx.Done():
				break fill
			}
		}
		timer.Stop()
		verified <- verifiedBatch{jobs: batch, valid: verifyJobs(batch, g.expanded)}
	}
}

// verifiedBatch is a batch whose signatures were checked: valid[i] says
// whether jobs[i]'s does.
type verifiedBatch struct {
	jobs  []*job
	valid []bool
}

// minVerifyShare is the fewest signatures a verification goroutine gets:
// below it, splitting a batch costs more in lost batch speed-up than the
// extra core gains.
const minVerifyShare = 32

// expandedKeys is how many devices' expanded Ed25519 keys the verifier
// keeps (~1.5 KiB each): decompressing a key cost a fifth of a
// signature's verification in a large batch (CPU profile, issue 19).
const expandedKeys = 16384

// verifyJobs checks the signatures of batch, split in GOMAXPROCS shares
// verified in parallel, each as one identity.Batch using keys.
func verifyJobs(batch []*job, keys *identity.ExpandedKeys) []bool {
	valid := make([]bool, len(batch))
	shares := max(1, min(runtime.GOMAXPROCS(0), len(batch)/minVerifyShare))
	size := (len(batch) + shares - 1) / shares
	var wg sync.WaitGroup
	for lo := 0; lo < len(batch); lo += size {
		hi := min(lo+size, len(batch))
		verify := func() {
			v := identity.NewBatchWithKeys(hi-lo, keys)
			for _, j := range batch[lo:hi] {
				tbs, err := j.env.ToBeSigned()
				if err != nil {
					tbs = nil
				}
				v.Add(j.pub, tbs, j.env.Sign1.Signature)
			}
			_, ok := v.Verify()
			copy(valid[lo:hi], ok)
		}
		if hi == len(batch) {
			verify() // the last share on this goroutine
			break
		}
		wg.Go(verify)
	}
	wg.Wait()
	return valid
}

func (g *Gateway) drain(batch []*job) {
	for _, j := range batch {
		answer(j, ErrClosed)
	}
	for {
		select {
		case j := <-g.jobs:
			answer(j, ErrClosed)
		default:
			return
		}
	}
}

// answer tells a job's ingester the outcome, unless it holds one already
// (its ingester gave up waiting and never read it).
func answer(j *job, err error) {
	select {
	case j.done <- err:
	default:
	}
}

// commit stores the envelopes of one verified batch that are not replays,
// and answers every one of them.
func (g *Gateway) commit(batch []*job, valid []bool) {
	var keep []*job
	var entries [][]byte
	last := map[string]uint64{} // replay checks within the batch, before the tracker learns them
	for i, j := range batch {
		if !valid[i] || j.env.Sign1.Alg != j.pub.Alg {
			j.done <- fmt.Errorf("%w: signature of %s does not verify", ErrRejected, j.env.Device)
			g.stats.rejected.Add(1)
			continue
		}
		seqs := make([]uint64, len(j.env.Readings))
		for k, r := range j.env.Readings {
			seqs[k] = r.Seq
		}
		if hi, ok := last[j.env.Device]; ok && seqs[0] <= hi {
			j.done <- fmt.Errorf("%w: %s: seq %d is not above %d (replay)", ErrRejected, j.env.Device, seqs[0], hi)
			g.stats.rejected.Add(1)
			continue
		}
		err := g.seqs.Check(j.env.Device, seqs)
		if errors.Is(err, reading.ErrSeqUnknown) {
			// The tracker forgot this device (it tracks MaxKeys devices);
			// the index knows its last stored seq.
			if last, found, ierr := g.index.lastSeq(j.env.Device); ierr == nil {
				if found {
					g.seqs.Accept(j.env.Device, last)
				} else {
					g.seqs.Accept(j.env.Device, 0)
				}
				err = g.seqs.Check(j.env.Device, seqs)
			}
		}
		if err != nil {
			if g.lastStored[j.env.Device] == sha256.Sum256(j.env.Raw) || g.stored(j.env) {
				// The device resent what is stored (its ack was lost): say so,
				// so the transport acknowledges it without storing it twice.
				j.done <- fmt.Errorf("%w: %s seq %d", ErrDuplicate, j.env.Device, seqs[len(seqs)-1])
				continue
			}
			j.done <- fmt.Errorf("%w: %v", ErrRejected, err)
			g.stats.rejected.Add(1)
			continue
		}
		entry, err := reading.NewEntry(j.auth, j.received, j.env.Raw)
		if err != nil {
			j.done <- fmt.Errorf("%w: %v", ErrRejected, err)
			g.stats.rejected.Add(1)
			continue
		}
		last[j.env.Device] = seqs[len(seqs)-1]
		keep = append(keep, j)
		entries = append(entries, entry)
	}
	if len(keep) == 0 {
		return
	}
	g.storeMu.Lock() // an erasure sees these entries indexed, or not stored yet
	defer g.storeMu.Unlock()
	first, err := g.data.Append(entries)
	if err != nil {
		g.log.Error("storing readings failed", "readings", len(entries), "err", err)
		for _, j := range keep {
			j.done <- fmt.Errorf("storing the reading: %w", err)
		}
		return
	}
	ents := make([]*reading.Entry, len(keep))
	for k, j := range keep {
		ents[k] = &reading.Entry{Layout: 3, AuthHeight: j.auth, ReceivedAt: j.received.UnixMilli(), Envelope: j.env}
	}
	if err := g.index.add(first, ents); err != nil {
		// The readings are stored; the index catches up when the gateway restarts.
		g.log.Error("indexing stored readings", "first", first, "err", err)
	}
	g.feed.publish(first, ents, g.late)
	for k, j := range keep {
		j.index = first + uint64(k)
		g.seqs.Accept(j.env.Device, j.env.Readings[len(j.env.Readings)-1].Seq)
		g.remember(j.env)
		g.stats.accepted.Add(1)
		g.stats.stored.Add(uint64(len(j.env.Readings)))
		j.done <- nil
	}
}

// remember notes the last envelope stored for a device, to recognise a
// resend of it. Only the committer goroutine (and restore before it
// starts) touch lastStored.
func (g *Gateway) remember(env *reading.Envelope) {
	if len(g.lastStored) >= g.cfg.MaxKeys {
		clear(g.lastStored)
	}
	g.lastStored[env.Device] = sha256.Sum256(env.Raw)
}

// stored reports whether env, refused as a replay, is an envelope the log
// holds: a client with several envelopes in flight (MQTT) resends all those
// whose acknowledgements it lost, not only the last one stored. The index
// finds the candidates by the device and the first reading's time; only
// entries still in the local log are compared (an archived one is not
// fetched for this).
func (g *Gateway) stored(env *reading.Envelope) bool {
	t := env.Readings[0].Time
	idx, err := g.index.query(env.Device, t, t.Add(time.Millisecond), 16)
	if err != nil {
		return false
	}
	for _, i := range idx {
		raw, err := g.data.Entry(i)
		if err != nil {
			continue
		}
		if e, err := reading.DecodeEntry(raw); err == nil && bytes.Equal(e.Envelope.Raw, env.Raw) {
			return true
		}
	}
	return false
}

// checkTime refuses an envelope with a reading dated more than MaxSkew
// after now, the gateway's clock (docs/readings.md, "Time").
func (g *Gateway) checkTime(env *reading.Envelope, now time.Time) error {
	limit := now.Add(g.cfg.MaxSkew)
	for _, r := range env.Readings {
		if r.Time.After(limit) {
			return fmt.Errorf("%w: seq %d of %s is dated %s, more than %v after the gateway's clock (%s); set the device's clock",
				ErrFutureReading, r.Seq, env.Device, r.Time.UTC().Format(time.RFC3339Nano), g.cfg.MaxSkew, now.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// late says whether reading r, received at receivedAt (Unix ms; 0 for an
// entry that does not record it), is dated more than LateAfter before it.
func (g *Gateway) late(receivedAt int64, r reading.Reading) bool {
	return receivedAt != 0 && receivedAt-r.Time.UnixMilli() > g.cfg.LateAfter.Milliseconds()
}
