package auditbundle

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// ErrRefused is wrapped by every error of Verify: the bundle does not
// verify from the trusted header. The message names the item (a header, a
// proof, a device, a reading) and what is wrong with it.
var ErrRefused = errors.New("audit bundle refused")

// VerifyOptions are an auditor's choices.
type VerifyOptions struct {
	// Trust is the header the auditor trusts (height and hash; Period the
	// trusting period, lightclient.DefaultTrustingPeriod if 0).
	Trust lightclient.TrustOptions
	// Now is the clock (default time.Now). It matters only when the
	// trusted header is below the bundle's headers (verification forward,
	// within the trusting period); headers below the trusted one are
	// verified by hash chaining, which no clock or period bounds.
	Now func() time.Time
	// Workers check readings in parallel (default GOMAXPROCS).
	Workers int
}

// Summary is what a verified bundle established.
type Summary struct {
	ChainID      string          `json:"chain_id"`
	Exporter     string          `json:"exporter,omitempty"` // who signed the bundle ("" unsigned: its claims are no one's word)
	Created      int64           `json:"created"`            // when the exporter says it made it (Unix ms)
	Org          string          `json:"org"`
	From         int64           `json:"from"` // Unix ms, as exported
	To           int64           `json:"to"`
	Trusted      int64           `json:"trusted"`      // the trusted header's height
	StateHeight  int64           `json:"state_height"` // every ledger proof is of this state
	StateHeader  int64           `json:"state_header"` // whose app hash is in this header, verified from the trusted one
	Headers      int             `json:"headers"`      // headers in the bundle, each verified from the trusted one
	HeaderRange  [2]int64        `json:"header_range"`
	AnchorRange  [2]int64        `json:"anchor_range"` // lowest and highest anchor height of the readings (0, 0 without readings)
	Readings     int             `json:"readings"`     // entries in the bundle
	Verified     int             `json:"verified"`     // log entries verified in full (signature, signer, inclusion, anchor)
	Erased       int             `json:"erased"`       // entries whose value was erased: hash, inclusion and anchor verified
	Withheld     int             `json:"withheld"`     // entries the exporter could not read: hash, inclusion and anchor verified
	Devices      []DeviceSummary `json:"devices"`
	SignersOther []string        `json:"signers_other,omitempty"` // signers of readings that are not exported devices (attesting gateways)
}

// DeviceSummary is what was verified of one device.
type DeviceSummary struct {
	ID       string        `json:"id"`
	Status   record.Status `json:"status"`
	Events   int           `json:"events"`   // history events, all of them, verified
	Readings int           `json:"readings"` // readings (values in envelopes) verified
	Attested int           `json:"attested"` // of those, readings a gateway attested (Modbus sensors): the gateway signed, not the device
	Entries  int           `json:"entries"`  // log entries verified in full
	Erased   int           `json:"erased"`
	Withheld int           `json:"withheld"`
	Refused  string        `json:"refused,omitempty"` // why the exporter could not list its readings
	// Erasures are the device's erasures on the ledger that meet the
	// bundle's range, as the exporter found them.
	Erasures []record.Erasure `json:"erasures,omitempty"`
}

// meets reports whether an erasure's range meets the bundle's.
func (b *Bundle) meets(e record.Erasure) bool {
	return (b.To == 0 || e.From < b.To) && (e.To == 0 || e.To > b.From)
}

// Verify checks a decoded bundle offline from one trusted header: every
// header (the light client's verification from the trusted one: skipping
// forward, hash chaining backward; and every commit signature in it), every
// ledger proof against the verified app hash of the bundle's state, every
// device's record and complete history, and every reading (in full with
// proof.VerifyReading, erased or withheld with proof.VerifyAnchored). The
// first failure is returned, wrapping ErrRefused, naming the item.
func Verify(ctx context.Context, b *Bundle, o VerifyOptions) (*Summary, error) {
	refuse := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrRefused}, a...)...) }
	if err := b.check(); err != nil {
		return nil, refuse("%v", err)
	}
	if o.Trust.Period == 0 {
		o.Trust.Period = lightclient.DefaultTrustingPeriod
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// Every header: well formed, its validators the set it names, every
	// signature of its commit valid (CometBFT's checks).
	src := make(bundleSource, len(b.Headers))
	for i := range b.Headers {
		h := &b.Headers[i]
		lb, err := checkHeader(b.ChainID, h)
		if err != nil {
			return nil, refuse("header %d: %v", h.Height(), err)
		}
		src[h.Height()] = lb
	}
	trusted, ok := src[o.Trust.Height]
	if !ok {
		return nil, refuse("the trusted header %d is not in the bundle (it has %s; the exporter built it from header %d)", o.Trust.Height, heights(b.Headers), b.TrustHeight)
	}
	stateHeader := b.StateHeight + 1
	if _, ok := src[stateHeader]; !ok {
		return nil, refuse("header %d, which carries the app hash of the state height %d, is not in the bundle", stateHeader, b.StateHeight)
	}
	// Above the trusted header the light client verifies forward, on the
	// auditor's clock. At or below it, only hash links: the clock is the
	// trusted header's own time, so that an old trusted header is not
	// "expired" for a check no period applies to.
	now := o.Now
	if b.Headers[len(b.Headers)-1].Height() <= o.Trust.Height {
		t := trusted.Time.Add(time.Second)
		now = func() time.Time { return t }
	}
	lc, err := lightclient.New(ctx, b.ChainID, o.Trust, src,
		lightclient.WithClock(now), lightclient.WithHeaderWait(0), lightclient.WithMaxBackwards(int64(len(b.Headers))+1))
	if err != nil {
		return nil, refuse("the trusted header: %w", err)
	}
	for i := range b.Headers {
		if h := b.Headers[i].Height(); h > o.Trust.Height {
			if _, err := lc.VerifyTo(ctx, h); err != nil {
				return nil, refuse("header %d: %v", h, err)
			}
		}
	}
	for i := len(b.Headers) - 1; i >= 0; i-- {
		if h := b.Headers[i].Height(); h < o.Trust.Height {
			if _, err := lc.VerifyBack(ctx, h); err != nil {
				return nil, refuse("header %d: %v", h, err)
			}
		}
	}
	// The state header is verified: it becomes the trust for the proofs
	// (all of its app hash), which then need no more walking.
	sh := src[stateHeader]
	at := sh.Time.Add(time.Second)
	plc, err := lightclient.New(ctx, b.ChainID, lightclient.TrustOptions{Height: stateHeader, Hash: sh.Hash(), Period: o.Trust.Period}, src,
		lightclient.WithClock(func() time.Time { return at }), lightclient.WithHeaderWait(0), lightclient.WithMaxBackwards(0))
	if err != nil {
		return nil, refuse("header %d: %v", stateHeader, err)
	}
	check := &memoChecker{lc: plc, done: make(map[*record.Proof]int64, len(b.Proofs))}
	for i, p := range b.Proofs {
		if _, err := check.CheckProof(ctx, p); err != nil {
			return nil, refuse("proof %d (key %s): %v", i, keyName(p.Key), err)
		}
	}

	s := &Summary{ChainID: b.ChainID, Exporter: b.Exporter, Created: b.Created, Org: b.Org, From: b.From, To: b.To, Trusted: o.Trust.Height, StateHeight: b.StateHeight,
		StateHeader: stateHeader, Headers: len(b.Headers), HeaderRange: [2]int64{b.Headers[0].Height(), b.Headers[len(b.Headers)-1].Height()},
		Readings: len(b.Readings)}
	devs := make(map[string]*DeviceSummary, len(b.Devices))
	s.Devices = make([]DeviceSummary, len(b.Devices))
	for i, d := range b.Devices {
		ds, err := b.verifyDevice(d)
		if err != nil {
			return nil, refuse("device %s: %v", d.ID, err)
		}
		s.Devices[i] = *ds
		devs[d.ID] = &s.Devices[i]
	}

	results := make([]readingResult, len(b.Readings))
	if err := b.verifyReadings(ctx, check, devs, results, o.Workers); err != nil {
		return nil, refuse("%v", err)
	}
	others := map[string]bool{}
	for i, r := range results {
		ds := devs[b.Readings[i].Device]
		switch {
		case r.erased:
			s.Erased++
			ds.Erased++
		case r.withheld:
			s.Withheld++
			ds.Withheld++
		default:
			s.Verified++
			ds.Entries++
			ds.Readings += r.values
			if r.signer != ds.ID {
				others[r.signer] = true
				ds.Attested += r.values
			}
		}
		if s.AnchorRange[0] == 0 || r.anchor < s.AnchorRange[0] {
			s.AnchorRange[0] = r.anchor
		}
		s.AnchorRange[1] = max(s.AnchorRange[1], r.anchor)
	}
	// Last: what no proof covers is the exporter's word, if signed.
	if err := b.VerifySignature(); err != nil {
		return nil, refuse("the bundle: %v", err)
	}
	for id := range others {
		s.SignersOther = append(s.SignersOther, id)
	}
	sort.Strings(s.SignersOther)
	return s, nil
}

// checkHeader checks a bundled header as CometBFT would: the header and
// commit are well formed and the commit signs this header's hash, the
// validator set is the one the header names, and every signature in the
// commit is valid and more than 2/3 of the set's power signed.
func checkHeader(chainID string, h *Header) (types.LightBlock, error) {
	vals, err := lightclient.ValidatorSet(h.Validators)
	if err != nil {
		return types.LightBlock{}, fmt.Errorf("validators: %v", err)
	}
	sh := &h.SignedHeader
	if err := sh.ValidateBasic(chainID); err != nil {
		return types.LightBlock{}, fmt.Errorf("does not hash to the signed block id, or is malformed: %v", err)
	}
	if string(vals.Hash()) != string(sh.ValidatorsHash) {
		return types.LightBlock{}, fmt.Errorf("its validator set hashes to %X, not the header's validators hash %X", vals.Hash(), []byte(sh.ValidatorsHash))
	}
	if err := vals.VerifyCommit(chainID, sh.Commit.BlockID, sh.Height, sh.Commit); err != nil {
		return types.LightBlock{}, fmt.Errorf("its commit: %v", err)
	}
	return types.LightBlock{SignedHeader: sh, ValidatorSet: vals}, nil
}

// bundleSource serves the bundle's headers to the light client.
type bundleSource map[int64]types.LightBlock

func (s bundleSource) Header(_ context.Context, height int64) (*types.SignedHeader, *types.ValidatorSet, error) {
	lb, ok := s[height]
	if !ok {
		return nil, nil, fmt.Errorf("%w: header %d is not in the bundle", lightclient.ErrHeaderNotFound, height)
	}
	return lb.SignedHeader, lb.ValidatorSet, nil
}

// memoChecker is a proof.Checker that checks each proof (by identity) once
// with the light client.
type memoChecker struct {
	lc   *lightclient.Client
	mu   sync.Mutex
	done map[*record.Proof]int64
}

func (m *memoChecker) CheckProof(ctx context.Context, p *record.Proof) (int64, error) {
	m.mu.Lock()
	h, ok := m.done[p]
	m.mu.Unlock()
	if ok {
		return h, nil
	}
	if err := m.lc.VerifyProof(ctx, p); err != nil {
		return 0, err
	}
	h = p.Height + 1
	m.mu.Lock()
	m.done[p] = h
	m.mu.Unlock()
	return h, nil
}

// verifyDevice checks a device's record and complete history (their
// proofs are verified already).
func (b *Bundle) verifyDevice(d Device) (*DeviceSummary, error) {
	p := b.Proofs[d.Record]
	if string(p.Key) != string(record.DeviceKey(d.ID)) {
		return nil, fmt.Errorf("its record proof is of key %s", keyName(p.Key))
	}
	var rec record.Device
	if err := record.Unmarshal(p.Value, &rec); err != nil {
		return nil, fmt.Errorf("its record: %v", err)
	}
	if rec.ID != d.ID {
		return nil, fmt.Errorf("its record is of %s", rec.ID)
	}
	if rec.Org != b.Org {
		return nil, fmt.Errorf("it belongs to organisation %q, not %q", rec.Org, b.Org)
	}
	if uint64(len(d.History)) != rec.History {
		return nil, fmt.Errorf("its record counts %d history events, the bundle has %d", rec.History, len(d.History))
	}
	for i, pi := range d.History {
		seq := uint64(i + 1)
		q := b.Proofs[pi]
		if string(q.Key) != string(record.HistoryKey(d.ID, seq)) {
			return nil, fmt.Errorf("history event %d: its proof is of key %s", seq, keyName(q.Key))
		}
		var ev record.Event
		if err := record.Unmarshal(q.Value, &ev); err != nil {
			return nil, fmt.Errorf("history event %d: %v", seq, err)
		}
		if ev.Seq != seq {
			return nil, fmt.Errorf("history event %d says it is event %d", seq, ev.Seq)
		}
	}
	ds := &DeviceSummary{ID: d.ID, Status: rec.Status, Events: len(d.History)}
	for j, pi := range d.Erasures {
		q := b.Proofs[pi]
		var e record.Erasure
		if err := record.Unmarshal(q.Value, &e); err != nil {
			return nil, fmt.Errorf("erasure %d: %v", j, err)
		}
		if string(q.Key) != string(record.ErasureKey(e.Seq)) || e.Device != d.ID || e.Org != b.Org {
			return nil, fmt.Errorf("erasure %d (key %s) is not an erasure of this device's readings by %s", j, keyName(q.Key), b.Org)
		}
		if j > 0 && e.Seq <= ds.Erasures[j-1].Seq {
			return nil, fmt.Errorf("erasure %d: erasures must be in ascending seq, each once", j)
		}
		if !b.meets(e) {
			return nil, fmt.Errorf("erasure %d's range [%s, %s) does not meet the bundle's", e.Seq, msTime(e.From), msTime(e.To))
		}
		ds.Erasures = append(ds.Erasures, e)
	}
	if d.Refused != nil {
		ds.Refused = d.Refused.Code + ": " + d.Refused.Message
	}
	return ds, nil
}

type readingResult struct {
	erased, withheld bool
	values           int
	signer           string
	anchor           int64
}

// ProofOf is the reading proof (proof.Reading) of the bundle's reading i,
// its ledger proofs taken from the tables.
func (b *Bundle) ProofOf(i int) *proof.Reading {
	r := &b.Readings[i]
	a := &b.Anchors[r.Anchor]
	p := &proof.Reading{Gateway: r.Gateway, Index: r.Index, Envelope: r.Envelope, EntryHash: r.EntryHash, Withheld: r.Withheld,
		AuthHeight: r.AuthHeight, ReceivedAt: r.ReceivedAt, Anchor: a.Anchor, Inclusion: r.Inclusion, Height: b.StateHeight, AnchorProof: b.Proofs[a.Proof]}
	if len(r.Signer) == 2 {
		p.Signer = &proof.Signer{Event: b.Proofs[r.Signer[0]], Next: b.Proofs[r.Signer[1]]}
	}
	return p
}

// verifyReadings checks every reading, in parallel; the error is that of
// the first reading (in bundle order) that fails.
func (b *Bundle) verifyReadings(ctx context.Context, check proof.Checker, devs map[string]*DeviceSummary, out []readingResult, workers int) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	errs := make([]error, len(b.Readings))
	var next, failed sync.Mutex
	first := len(b.Readings)
	i := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				j := i
				i++
				next.Unlock()
				failed.Lock()
				stop := j >= first
				failed.Unlock()
				if stop || j >= len(b.Readings) {
					return
				}
				if err := b.verifyReading(ctx, check, devs, j, &out[j]); err != nil {
					errs[j] = err
					failed.Lock()
					first = min(first, j)
					failed.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first < len(b.Readings) {
		return errs[first]
	}
	return nil
}

func (b *Bundle) verifyReading(ctx context.Context, check proof.Checker, devs map[string]*DeviceSummary, i int, out *readingResult) error {
	r := &b.Readings[i]
	name := fmt.Sprintf("reading %d (gateway %s, index %d)", i, r.Gateway, r.Index)
	ds := devs[r.Device]
	if ds == nil {
		return fmt.Errorf("%s: listed under device %s, which the bundle does not export", name, r.Device)
	}
	if ds.Refused != "" {
		return fmt.Errorf("%s: listed under device %s, whose readings the bundle says were refused", name, r.Device)
	}
	p := b.ProofOf(i)
	if r.Envelope == nil {
		an, err := proof.VerifyAnchored(ctx, check, p)
		if err != nil {
			return fmt.Errorf("%s (%s): %v", name, r.Withheld.Code, err)
		}
		out.erased, out.withheld = r.Withheld.Code == proof.CodeErased, r.Withheld.Code == proof.CodeWithheld
		out.anchor = an.AnchorHeight
		return nil
	}
	v, err := proof.VerifyReading(ctx, check, p)
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if v.Envelope.Device != r.Device {
		return fmt.Errorf("%s: the envelope is of device %s, not %s", name, v.Envelope.Device, r.Device)
	}
	if !b.inRange(v.Envelope) {
		return fmt.Errorf("%s: none of its readings is timed in the bundle's range [%s, %s)", name, msTime(b.From), msTime(b.To))
	}
	out.values = len(v.Envelope.Readings)
	out.signer = v.Envelope.Signer()
	out.anchor = v.AnchorHeight
	return nil
}

// inRange reports whether one of the envelope's readings is timed in the
// bundle's range.
func (b *Bundle) inRange(e *reading.Envelope) bool {
	for _, rd := range e.Readings {
		ms := rd.Time.UnixMilli()
		if ms >= b.From && (b.To == 0 || ms < b.To) {
			return true
		}
	}
	return false
}

func msTime(ms int64) string {
	if ms == 0 {
		return "0"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// keyName prints a state key: its text prefix, with a binary suffix in hex.
func keyName(k []byte) string {
	for i, c := range k {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%s%x", k[:i], k[i:])
		}
	}
	return string(k)
}

func heights(hs []Header) string {
	if len(hs) == 0 {
		return "no headers"
	}
	if len(hs) == 1 {
		return fmt.Sprintf("header %d", hs[0].Height())
	}
	return fmt.Sprintf("%d headers from %d to %d", len(hs), hs[0].Height(), hs[len(hs)-1].Height())
}
