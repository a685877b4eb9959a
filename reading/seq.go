package reading

import (
	"container/list"
	"fmt"
	"sync"
)

// SeqTracker protects a gateway against replayed readings: it holds, for
// each device, the highest sequence number accepted, and accepts only
// higher ones (for a batch, every item must be higher; the last becomes
// the highest). It is safe for concurrent use.
//
// It tracks at most maxDevices devices and evicts the least recently used
// beyond that. Eviction forgets a device's highest sequence number, which
// would let its old readings be replayed, so a tracker that has evicted
// becomes partial: it then answers ErrSeqUnknown for a device it does not
// hold, and the caller loads the device's highest sequence number from its
// durable store (0 for a device that never sent anything), passes it to
// Accept, and checks again. A tracker that never evicted knows every device
// it was told about, and treats an unknown device as new (highest 0).
//
// The usual flow for an envelope e of device d:
//
//	t.Check(d, e.Seqs())   // cheap, before the signature is verified
//	e.Verify(pub)          // expensive
//	t.Advance(d, e.Seqs()) // checks again and accepts, atomically
//
// Advance, not Accept, must follow verification when envelopes of one
// device may be handled concurrently: two copies of one envelope can both
// pass Check, and only one passes Advance.
type SeqTracker struct {
	mu      sync.Mutex
	max     int
	devices map[string]*seqEntry
	lru     *list.List // of *seqEntry, most recently used first
	partial bool
}

type seqEntry struct {
	device  string
	highest uint64
	elem    *list.Element // in SeqTracker.lru
}

// SeqState is the content of a SeqTracker, to persist and restore it.
type SeqState struct {
	// Devices lists the tracked devices, most recently used first.
	Devices []DeviceSeq
	// Partial reports that devices were evicted: an untracked device is
	// unknown, not new.
	Partial bool
}

// DeviceSeq is the highest sequence number accepted from a device.
type DeviceSeq struct {
	Device  string
	Highest uint64
}

// NewSeqTracker returns an empty tracker of at most maxDevices devices. It
// panics if maxDevices < 1.
func NewSeqTracker(maxDevices int) *SeqTracker {
	if maxDevices < 1 {
		panic(fmt.Sprintf("reading: NewSeqTracker(%d): want at least 1 device", maxDevices))
	}
	return &SeqTracker{max: maxDevices, devices: make(map[string]*seqEntry), lru: list.New()}
}

// RestoreSeqTracker returns a tracker holding s. If s lists more than
// maxDevices devices, the least recently used ones are dropped and the
// tracker is partial. A device listed twice keeps its first (most recent)
// entry.
func RestoreSeqTracker(maxDevices int, s SeqState) *SeqTracker {
	t := NewSeqTracker(maxDevices)
	t.partial = s.Partial
	// Insert from least to most recently used, so that the order holds.
	for i := len(s.Devices) - 1; i >= 0; i-- {
		d := s.Devices[i]
		if e, ok := t.devices[d.Device]; ok {
			e.highest = d.Highest
			t.lru.MoveToFront(e.elem)
			continue
		}
		t.insert(d.Device, d.Highest)
	}
	return t
}

// State returns the tracker's content, most recently used device first.
func (t *SeqTracker) State() SeqState {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := SeqState{Devices: make([]DeviceSeq, 0, len(t.devices)), Partial: t.partial}
	for el := t.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*seqEntry)
		s.Devices = append(s.Devices, DeviceSeq{Device: e.device, Highest: e.highest})
	}
	return s
}

// Len returns the number of devices tracked.
func (t *SeqTracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.devices)
}

// Highest returns the highest sequence number accepted from device, and
// whether the tracker holds the device.
func (t *SeqTracker) Highest(device string) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.devices[device]; ok {
		return e.highest, true
	}
	return 0, false
}

// Check reports whether readings of device with the sequence numbers seqs
// (strictly increasing, as in a decoded envelope) may be accepted: every
// one must be above the highest accepted. It returns an error wrapping
// ErrReplay, ErrSeqUnknown (see SeqTracker), or ErrInvalid for an empty
// or unordered seqs. It changes nothing but the device's recency.
func (t *SeqTracker) Check(device string, seqs []uint64) error {
	if err := checkSeqs(seqs); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.check(device, seqs[0])
}

// Advance checks seqs as Check does and, if they may be accepted, makes the
// last one the device's highest, atomically. Call it once the envelope's
// signature has been verified.
func (t *SeqTracker) Advance(device string, seqs []uint64) error {
	if err := checkSeqs(seqs); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.check(device, seqs[0]); err != nil {
		return err
	}
	t.accept(device, seqs[len(seqs)-1])
	return nil
}

// Accept records last as accepted from device: the device's highest
// becomes last if that is higher (it never goes down). It is also how the
// caller tells the tracker a device's highest sequence number loaded from
// durable storage. Accept does not check for replays: see Advance.
func (t *SeqTracker) Accept(device string, last uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.accept(device, last)
}

// checkSeqs checks that seqs is non-empty and strictly increasing.
func checkSeqs(seqs []uint64) error {
	if len(seqs) == 0 {
		return invalid("no sequence numbers to check")
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			return invalid("sequence numbers not strictly increasing: %d after %d", seqs[i], seqs[i-1])
		}
	}
	return nil
}

// check tests first against device's highest; t.mu is held.
func (t *SeqTracker) check(device string, first uint64) error {
	e, ok := t.devices[device]
	if !ok {
		if t.partial {
			return fmt.Errorf("%w: device %s is not tracked (the tracker has evicted devices): load its highest sequence number", ErrSeqUnknown, truncate(device))
		}
		if first == 0 {
			return fmt.Errorf("%w: device %s: seq 0 is never accepted", ErrReplay, truncate(device))
		}
		return nil
	}
	t.lru.MoveToFront(e.elem)
	if first <= e.highest {
		return fmt.Errorf("%w: device %s: seq %d is not above the highest accepted, %d", ErrReplay, truncate(device), first, e.highest)
	}
	return nil
}

// accept raises device's highest to last; t.mu is held.
func (t *SeqTracker) accept(device string, last uint64) {
	if e, ok := t.devices[device]; ok {
		e.highest = max(e.highest, last)
		t.lru.MoveToFront(e.elem)
		return
	}
	t.insert(device, last)
}

// insert adds a device at the front, evicting the least recently used one
// if the tracker is full; t.mu is held (or t is not shared yet).
func (t *SeqTracker) insert(device string, highest uint64) {
	if len(t.devices) >= t.max {
		old := t.lru.Remove(t.lru.Back()).(*seqEntry)
		delete(t.devices, old.device)
		t.partial = true
	}
	e := &seqEntry{device: device, highest: highest}
	t.devices[device] = e
	e.elem = t.lru.PushFront(e)
}
