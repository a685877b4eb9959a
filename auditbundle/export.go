package auditbundle

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// ExportOptions say what to export.
type ExportOptions struct {
	Org     string
	Devices []string // default: every device of Org
	// From and To bound the readings' times, [From, To); zero values are
	// no bound.
	From, To time.Time
	// TrustHeight is the header the auditor will trust (0: the header
	// that carries the bundle state's app hash). The exporter includes
	// the headers the light client needs from it, trusting its node for
	// that header's hash.
	TrustHeight int64
	// TrustPeriod is the trusting period for verifying forward from
	// TrustHeight (default lightclient.DefaultTrustingPeriod).
	TrustPeriod time.Duration
	// Workers fetch readings in parallel (default 4).
	Workers int
	// Progress, if set, is told what the export is doing.
	Progress func(step string)
	// Now is the clock the bundle is dated by (default time.Now).
	Now func() time.Time
}

// Export builds a bundle from the node behind c, reading as c's Identity:
// readings the identity may not list are recorded as refused, and entries
// it may not read as withheld (their hash and place in the log only).
// Every ledger proof is fetched at one state height, the latest once all
// readings are anchored; the headers are those the light client fetched
// to verify that state's header from TrustHeight.
func Export(ctx context.Context, c *client.Client, o ExportOptions) (*Bundle, error) {
	if o.Org == "" {
		return nil, errors.New("auditbundle: no organisation to export")
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.TrustPeriod <= 0 {
		o.TrustPeriod = lightclient.DefaultTrustingPeriod
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	progress := func(f string, a ...any) {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf(f, a...))
		}
	}
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Format: Format, Version: Version, ChainID: st.ChainID, Created: o.Now().UnixMilli(), Org: o.Org,
		Headers: []Header{}, Proofs: []*record.Proof{}, Anchors: []Anchor{}, Devices: []Device{}, Readings: []Reading{}}
	if !o.From.IsZero() {
		b.From = o.From.UnixMilli()
	}
	if !o.To.IsZero() {
		b.To = o.To.UnixMilli()
	}
	ids := slices.Clone(o.Devices)
	if len(ids) == 0 {
		if ids, err = orgDevices(ctx, c, o.Org); err != nil {
			return nil, err
		}
	}
	sort.Strings(ids)
	ids = slices.Compact(ids)
	if len(ids) > MaxDevices {
		return nil, fmt.Errorf("auditbundle: %d devices, more than a bundle holds (%d)", len(ids), MaxDevices)
	}

	// Readings: list each device's, then fetch each entry with its proof.
	type listed struct {
		device string
		index  uint64
	}
	var entries []listed
	refused := map[string]*proof.Unavailable{}
	for _, id := range ids {
		idx, why, err := listReadings(ctx, c, id, b.From, b.To)
		if err != nil {
			return nil, err
		}
		if why != nil {
			refused[id] = why
			progress("device %s: readings not readable as this identity (%s)", id, why.Message)
			continue
		}
		progress("device %s: %d log entries", id, len(idx))
		for _, i := range idx {
			entries = append(entries, listed{id, i})
		}
	}
	if len(entries) > MaxReadings {
		return nil, fmt.Errorf("auditbundle: %d log entries, more than a bundle holds (%d); export a shorter time range", len(entries), MaxReadings)
	}
	proofs := make([]*proof.Reading, len(entries))
	if err := parallel(ctx, len(entries), o.Workers, func(i int) error {
		p, err := c.Reading(ctx, entries[i].index)
		if err == nil && errors.Is(p.Err(), proof.ErrNotAnchored) {
			p, err = c.WaitReadingProof(ctx, entries[i].index, 200*time.Millisecond)
		}
		if err == nil {
			err = p.Err()
		}
		if err != nil {
			return fmt.Errorf("reading %d of device %s: %w", entries[i].index, entries[i].device, err)
		}
		proofs[i] = p
		return nil
	}); err != nil {
		return nil, err
	}
	progress("%d log entries fetched with their proofs", len(entries))

	// One state for every ledger proof: the latest, at or above every
	// reading proof's (so every anchor they name is in it).
	if st, err = c.Status(ctx); err != nil {
		return nil, err
	}
	b.StateHeight = st.Height
	for _, p := range proofs {
		b.StateHeight = max(b.StateHeight, p.Height)
	}
	// A reading proof may be of a state the node's API does not serve
	// proofs of yet (committed, its header not yet): wait for it.
	for deadline := time.Now().Add(30 * time.Second); st.Height < b.StateHeight; {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the node's state stays at height %d, below its reading proofs' %d", st.Height, b.StateHeight)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if st, err = c.Status(ctx); err != nil {
			return nil, err
		}
	}
	pt := &proofTable{c: c, height: b.StateHeight, byKey: map[string]*record.Proof{}}
	for _, id := range ids {
		var d record.Device
		if err := pt.record(ctx, record.DeviceKey(id), &d); err != nil {
			return nil, fmt.Errorf("device %s: %w", id, err)
		}
		if d.Org != o.Org {
			return nil, fmt.Errorf("device %s belongs to organisation %q, not %q", id, d.Org, o.Org)
		}
		dev := Device{ID: id, Refused: refused[id]}
		keys := [][]byte{record.DeviceKey(id)}
		for seq := uint64(1); seq <= d.History; seq++ {
			keys = append(keys, record.HistoryKey(id, seq))
		}
		ers, err := deviceErasures(ctx, c, o.Org, id, b)
		if err != nil {
			return nil, err
		}
		for _, e := range ers {
			keys = append(keys, record.ErasureKey(e.Seq))
		}
		if err := pt.prove(ctx, o.Workers, keys[1:]); err != nil {
			return nil, fmt.Errorf("device %s's history: %w", id, err)
		}
		pt.erasures = append(pt.erasures, len(ers))
		b.Devices = append(b.Devices, dev)
		pt.deviceKeys = append(pt.deviceKeys, keys)
	}
	progress("%d devices with their history, proved at height %d", len(ids), b.StateHeight)

	type anchorKey struct {
		gw   string
		size uint64
	}
	anchors := map[anchorKey]record.Anchor{}
	signerKeys := make([][2][]byte, len(proofs))
	for i, p := range proofs {
		anchors[anchorKey{p.Gateway, p.Anchor.Size}] = p.Anchor
		if p.Envelope == nil {
			continue
		}
		env, err := reading.Decode(p.Envelope)
		if err != nil {
			return nil, fmt.Errorf("reading %d: %w", p.Index, err)
		}
		if p.Signer == nil || p.Signer.Event == nil {
			return nil, fmt.Errorf("reading %d: the node sent no signer proof", p.Index)
		}
		var held record.Event
		if err := record.Unmarshal(p.Signer.Event.Value, &held); err != nil {
			return nil, fmt.Errorf("reading %d: the signer's history event: %w", p.Index, err)
		}
		signer := env.Signer()
		var sd record.Device
		if err := pt.record(ctx, record.DeviceKey(signer), &sd); err != nil {
			return nil, fmt.Errorf("reading %d: its signer %s: %w", p.Index, signer, err)
		}
		// The event in force at the authentication height is the same in
		// any later state; what follows it may have changed.
		next := record.DeviceKey(signer)
		if held.Seq < sd.History {
			next = record.HistoryKey(signer, held.Seq+1)
		}
		signerKeys[i] = [2][]byte{record.HistoryKey(signer, held.Seq), next}
	}
	var more [][]byte
	for _, k := range signerKeys {
		if k[0] != nil {
			more = append(more, k[0], k[1])
		}
	}
	anchorKeys := make([]anchorKey, 0, len(anchors))
	for k := range anchors {
		anchorKeys = append(anchorKeys, k)
		more = append(more, record.AnchorAtKey(k.gw, k.size))
	}
	if err := pt.prove(ctx, o.Workers, more); err != nil {
		return nil, err
	}
	progress("%d anchors and the signers' records proved", len(anchors))

	// The tables, in their order.
	keys := make([]string, 0, len(pt.byKey))
	for k := range pt.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys) // byte order
	used := map[string]bool{}
	for _, dk := range pt.deviceKeys {
		for _, k := range dk {
			used[string(k)] = true
		}
	}
	for _, k := range signerKeys {
		if k[0] != nil {
			used[string(k[0])], used[string(k[1])] = true, true
		}
	}
	for _, k := range anchorKeys {
		used[string(record.AnchorAtKey(k.gw, k.size))] = true
	}
	pos := map[string]int{}
	for _, k := range keys {
		if used[k] {
			pos[k] = len(b.Proofs)
			b.Proofs = append(b.Proofs, pt.byKey[k])
		}
	}
	for i, dk := range pt.deviceKeys {
		b.Devices[i].Record = pos[string(dk[0])]
		b.Devices[i].History = []int{}
		ne := pt.erasures[i]
		for _, k := range dk[1 : len(dk)-ne] {
			b.Devices[i].History = append(b.Devices[i].History, pos[string(k)])
		}
		for _, k := range dk[len(dk)-ne:] {
			b.Devices[i].Erasures = append(b.Devices[i].Erasures, pos[string(k)])
		}
	}
	sort.Slice(anchorKeys, func(i, j int) bool {
		a, b := anchorKeys[i], anchorKeys[j]
		return a.gw < b.gw || (a.gw == b.gw && a.size < b.size)
	})
	apos := map[anchorKey]int{}
	for i, k := range anchorKeys {
		apos[k] = i
		b.Anchors = append(b.Anchors, Anchor{Anchor: anchors[k], Proof: pos[string(record.AnchorAtKey(k.gw, k.size))]})
	}
	for i, p := range proofs {
		r := Reading{Device: entries[i].device, Gateway: p.Gateway, Index: p.Index, Envelope: p.Envelope, AuthHeight: p.AuthHeight,
			ReceivedAt: p.ReceivedAt, Anchor: apos[anchorKey{p.Gateway, p.Anchor.Size}], Inclusion: p.Inclusion}
		if p.Envelope == nil {
			r.EntryHash, r.Withheld = p.EntryHash, p.Withheld
		} else {
			r.Signer = []int{pos[string(signerKeys[i][0])], pos[string(signerKeys[i][1])]}
		}
		if r.Inclusion == nil {
			r.Inclusion = [][]byte{}
		}
		b.Readings = append(b.Readings, r)
	}
	sort.Slice(b.Readings, func(i, j int) bool {
		x, y := &b.Readings[i], &b.Readings[j]
		return x.Gateway < y.Gateway || (x.Gateway == y.Gateway && x.Index < y.Index)
	})

	// Headers: those the light client fetches to verify the state's header
	// from the trusted one.
	if b.Headers, b.TrustHeight, err = exportHeaders(ctx, c, b.ChainID, b.StateHeight+1, o.TrustHeight, o.TrustPeriod); err != nil {
		return nil, err
	}
	progress("%d headers, from the trusted header %d to the state's header %d", len(b.Headers), b.TrustHeight, b.StateHeight+1)
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("auditbundle: the bundle made is not well formed (a bug): %w", err)
	}
	if id := c.Identity; id != nil && id.Key != nil {
		if err := b.Sign(id.Key); err != nil {
			return nil, fmt.Errorf("auditbundle: signing the bundle: %w", err)
		}
	}
	return b, nil
}

// orgDevices lists an organisation's devices.
func orgDevices(ctx context.Context, c *client.Client, org string) ([]string, error) {
	var ids []string
	after := ""
	for range MaxDevices/1000 + 1 {
		var page struct {
			Items []record.Device `json:"items"`
			Next  string          `json:"next"`
		}
		path := "/v1/devices?limit=1000&org=" + url.QueryEscape(org)
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		if err := c.Get(ctx, path, &page); err != nil {
			return nil, fmt.Errorf("listing the devices of %s: %w", org, err)
		}
		for _, d := range page.Items {
			ids = append(ids, d.ID)
		}
		if page.Next == "" {
			return ids, nil
		}
		after = page.Next
	}
	return nil, fmt.Errorf("organisation %s has more than %d devices", org, MaxDevices)
}

// listReadings lists the log entries of a device's readings timed in
// [from, to) (0: no bound), paging by time. A refusal (401, 403) is
// returned as why, not as an error.
func listReadings(ctx context.Context, c *client.Client, device string, from, to int64) (idx []uint64, why *proof.Unavailable, err error) {
	const limit = 1000
	seen := map[uint64]bool{}
	for range MaxReadings/limit + 10 {
		path := "/v1/readings?limit=" + strconv.Itoa(limit) + "&device=" + url.QueryEscape(device) + "&from=" + strconv.FormatInt(from, 10)
		if to != 0 {
			path += "&to=" + strconv.FormatInt(to, 10)
		}
		var page struct {
			Items []client.ReadingItem `json:"items"`
		}
		err := c.Get(ctx, path, &page)
		var e *client.Error
		if errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden) {
			return nil, &proof.Unavailable{Code: e.Code, Message: e.Message}, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("listing the readings of %s: %w", device, err)
		}
		for _, it := range page.Items {
			if !seen[it.Index] {
				seen[it.Index] = true
				idx = append(idx, it.Index)
			}
		}
		if len(page.Items) < limit {
			slices.Sort(idx)
			return idx, nil, nil
		}
		last := page.Items[len(page.Items)-1].Time.UnixMilli()
		if last <= from {
			last = from + 1 // a full page of one millisecond: go on after it
		}
		from = last
	}
	return nil, nil, fmt.Errorf("device %s has more than %d readings in the range", device, MaxReadings)
}

// proofTable fetches and keeps proofs of one state height.
type proofTable struct {
	c          *client.Client
	height     int64
	mu         sync.Mutex
	byKey      map[string]*record.Proof
	deviceKeys [][][]byte // per device: its record key, its history keys, its erasures' keys
	erasures   []int      // per device: how many erasure keys end its deviceKeys
}

// deviceErasures lists the erasures of a device whose range meets the
// bundle's, in seq order.
func deviceErasures(ctx context.Context, c *client.Client, org, device string, b *Bundle) ([]record.Erasure, error) {
	var out []record.Erasure
	after := ""
	for range MaxProofs/1000 + 1 {
		var page struct {
			Items []record.Erasure `json:"items"`
			Next  string           `json:"next"`
		}
		path := "/v1/erasures?limit=1000&org=" + url.QueryEscape(org) + "&device=" + url.QueryEscape(device)
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		if err := c.Get(ctx, path, &page); err != nil {
			return nil, fmt.Errorf("listing the erasures of %s: %w", device, err)
		}
		for _, e := range page.Items {
			if b.meets(e) {
				out = append(out, e)
			}
		}
		if page.Next == "" {
			return out, nil
		}
		after = page.Next
	}
	return nil, fmt.Errorf("device %s has more erasures than a bundle holds", device)
}

func (t *proofTable) get(ctx context.Context, key []byte) (*record.Proof, error) {
	t.mu.Lock()
	p := t.byKey[string(key)]
	t.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p = new(record.Proof)
	if err := t.c.Get(ctx, "/v1/proofs?key="+hex.EncodeToString(key)+"&height="+strconv.FormatInt(t.height, 10), p); err != nil {
		return nil, fmt.Errorf("proving %s at height %d: %w", keyName(key), t.height, err)
	}
	if p.Height != t.height || !bytes.Equal(p.Key, key) || p.Value == nil {
		return nil, fmt.Errorf("proving %s at height %d: the node answered a proof of %s at height %d (present: %v)", keyName(key), t.height, keyName(p.Key), p.Height, p.Value != nil)
	}
	t.mu.Lock()
	t.byKey[string(key)] = p
	t.mu.Unlock()
	return p, nil
}

// record proves key and decodes its value into v.
func (t *proofTable) record(ctx context.Context, key []byte, v any) error {
	p, err := t.get(ctx, key)
	if err != nil {
		return err
	}
	return record.Unmarshal(p.Value, v)
}

func (t *proofTable) prove(ctx context.Context, workers int, keys [][]byte) error {
	return parallel(ctx, len(keys), workers, func(i int) error {
		_, err := t.get(ctx, keys[i])
		return err
	})
}

// parallel runs f(0..n-1) on workers goroutines; the first error stops it.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

// exportHeaders returns the headers the light client fetches to verify
// header target from the header trust (0: target itself), trusting the
// node for trust's hash, and the trust height used.
func exportHeaders(ctx context.Context, c *client.Client, chainID string, target, trust int64, period time.Duration) ([]Header, int64, error) {
	if trust <= 0 {
		trust = target
	}
	src := &recordingSource{c: c, got: map[int64]*client.HeaderResponse{}}
	th, err := waitHeader(ctx, c, trust)
	if err != nil {
		return nil, 0, err
	}
	lb := types.LightBlock{SignedHeader: &th.SignedHeader}
	lc, err := lightclient.New(ctx, chainID, lightclient.TrustOptions{Height: trust, Hash: lb.Hash(), Period: period}, src,
		lightclient.WithMaxBackwards(MaxHeaders-1))
	if err != nil {
		return nil, 0, fmt.Errorf("trusting header %d: %w", trust, err)
	}
	if target > trust {
		_, err = lc.VerifyTo(ctx, target)
	} else {
		_, err = lc.VerifyBack(ctx, target)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("verifying header %d from header %d: %w", target, trust, err)
	}
	hs := make([]Header, 0, len(src.got))
	for _, h := range src.got {
		hs = append(hs, Header{HeaderResponse: *h})
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].Height() < hs[j].Height() })
	return hs, trust, nil
}

// waitHeader fetches a header, waiting (15 s at most) for it to be
// committed.
func waitHeader(ctx context.Context, c *client.Client, height int64) (*client.HeaderResponse, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		h, err := c.Header(ctx, height)
		var e *client.Error
		if err == nil || !errors.As(err, &e) || e.Status != http.StatusNotFound || time.Now().After(deadline) {
			return h, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// recordingSource is a light client source over the node's API that
// keeps every header it serves.
type recordingSource struct {
	c   *client.Client
	mu  sync.Mutex
	got map[int64]*client.HeaderResponse
}

func (s *recordingSource) Header(ctx context.Context, height int64) (*types.SignedHeader, *types.ValidatorSet, error) {
	if height <= 0 {
		return nil, nil, fmt.Errorf("auditbundle: header %d: the export asks for heights only", height)
	}
	h, err := s.c.Header(ctx, height)
	var e *client.Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return nil, nil, fmt.Errorf("%w: %v", lightclient.ErrHeaderNotFound, err)
	}
	if err != nil {
		return nil, nil, err
	}
	vals, err := lightclient.ValidatorSet(h.Validators)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: validators of height %d: %v", lightclient.ErrBadHeader, height, err)
	}
	s.mu.Lock()
	s.got[height] = h
	s.mu.Unlock()
	return &h.SignedHeader, vals, nil
}
