package mesh

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/pebblelog"
	"github.com/thingnet/thingnet/mesh/message"
)

// MailboxConfig configures the mailboxes a gateway keeps for sleeping
// devices.
type MailboxConfig struct {
	Dir         string // Pebble store; required
	MaxMessages int    // per device; default 1000 (the oldest is dropped, with an alarm)
	MaxBytes    int    // per device; default 1 MiB
	// DownlinksPerDay is a device's daily wake-up budget unless its ledger
	// label downlinks_per_day sets another; default 10.
	DownlinksPerDay int
	// DownlinksPerClass sets the daily budget by device class (e.g.
	// "sensor": 4, "lock": 24), below a device's own label and above
	// DownlinksPerDay.
	DownlinksPerClass map[string]int
	// SenderWakesPerDay is what one sender may spend of one device's
	// budget in a day; default 5.
	SenderWakesPerDay int
	NoSync            bool // tests only

	fs vfs.FS // tests: the store's file system (a slow disk); default the OS's
}

// Why a wake-up was not sent.
const (
	wakeDenyUnauthorized = iota // the message was refused (unknown, inactive, not granted, replay, bad signature)
	wakeDenySenderQuota
	wakeDenyDeviceBudget
	wakeDenyCount
)

var wakeDenyNames = [wakeDenyCount]string{"unauthorized", "sender_quota", "device_budget"}

// Mailbox holds messages for sleeping devices, end to end encrypted by
// their senders: the gateway checks who sent them, never reads them.
type Mailbox struct {
	n   *Node
	cfg MailboxConfig
	db  *pebble.DB
	log *slog.Logger

	mu      sync.Mutex // store writes, counters, windows
	boxes   map[string]*boxState
	windows map[string]*message.ReplayWindow // sender "\x00" receiver
	held    map[string]heldCount             // receiver "\x00" sender: what the sender holds in the box
	depth   uint64
	bytes   uint64

	wakeMu  sync.Mutex
	wakers  map[string]*waker // sleeping devices listening for wake-ups
	closing chan struct{}
}

// boxState is one device's mailbox counters, stored under "c/<device>".
type boxState struct {
	Next  uint64 `cbor:"1,keyasint"` // next message number
	Head  uint64 `cbor:"2,keyasint"` // oldest held
	Count uint64 `cbor:"3,keyasint"`
	Bytes uint64 `cbor:"4,keyasint"`
}

// heldCount is what one sender holds in one device's mailbox, stored
// under "n/<receiver>\x00<sender>" (two big-endian uint64s).
type heldCount struct{ N, Bytes uint64 }

func (h heldCount) marshal() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, h.N), h.Bytes)
}

// less takes one message of size bytes away (never below zero: messages
// stored before the counts were kept are not in them).
func (h heldCount) less(size int) heldCount {
	if h.N > 0 {
		h.N--
	}
	h.Bytes -= min(h.Bytes, uint64(size))
	return h
}

type waker struct {
	w  *bufio.Writer
	s  network.Stream
	mu sync.Mutex
}

func openMailbox(c MailboxConfig, n *Node) (*Mailbox, error) {
	if c.Dir == "" {
		return nil, errors.New("mesh: MailboxConfig.Dir is required")
	}
	if c.MaxMessages <= 0 {
		c.MaxMessages = 1000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 20
	}
	if c.DownlinksPerDay <= 0 {
		c.DownlinksPerDay = 10
	}
	if c.SenderWakesPerDay <= 0 {
		c.SenderWakesPerDay = 5
	}
	db, err := pebble.Open(filepath.Clean(c.Dir), &pebble.Options{FormatMajorVersion: pebble.FormatNewest, FS: c.fs,
		Logger: pebblelog.New(n.log.With("component", "mailbox"), "mesh: mailbox")})
	if err != nil {
		return nil, fmt.Errorf("mesh: opening mailbox store %s: %w", c.Dir, err)
	}
	m := &Mailbox{n: n, cfg: c, db: db, log: n.log, boxes: map[string]*boxState{}, windows: map[string]*message.ReplayWindow{},
		held: map[string]heldCount{}, wakers: map[string]*waker{}, closing: make(chan struct{})}
	if err := m.load(); err != nil {
		db.Close()
		return nil, err
	}
	return m, nil
}

func (m *Mailbox) load() error {
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: []byte("c/"), UpperBound: []byte("c0")})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		var b boxState
		if err := message.Unmarshal(it.Value(), &b); err != nil {
			return fmt.Errorf("mesh: mailbox counters of %q: %w", it.Key()[2:], err)
		}
		m.boxes[string(it.Key()[2:])] = &b
		m.depth += b.Count
		m.bytes += b.Bytes
	}
	return it.Error()
}

func (m *Mailbox) close() error {
	close(m.closing)
	return m.db.Close()
}

func (m *Mailbox) totals() (uint64, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.depth, m.bytes
}

// apply applies b to the store, to be called under m.mu: b is visible
// to readers at once, in the order m.mu gives. The returned wait blocks
// until b is durable (fsynced, unless NoSync) and closes b: call it after
// releasing m.mu, so that one fsync holds up only the writers waiting for
// it, and Pebble syncs the batches applied meanwhile together. If apply
// fails, b was not applied and wait only closes it. If the fsync fails,
// b's writers get the error and acknowledge nothing, though b stays
// visible and may be kept: a deposit then may reach its device without
// having been acknowledged (at least once), never the other way round.
// (ApplyNoSyncWait is marked experimental by Pebble; CockroachDB commits
// this way.)
func (m *Mailbox) apply(b *pebble.Batch) (wait func() error, err error) {
	closeOnly := func() error { return b.Close() }
	if m.cfg.NoSync {
		return closeOnly, b.Commit(pebble.NoSync)
	}
	if err := m.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		return closeOnly, err
	}
	return func() error {
		err := b.SyncWait()
		b.Close()
		return err
	}, nil
}

func msgKey(device string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("q/"+device+"\x00"), seq)
}

func dayKey(prefix string, day int64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefix), uint64(day))
}

// deposit takes a batch of messages for devices whose mailbox this is:
// each is checked as its receiver would (sender active, granted, fresh,
// signed) except that it is not opened, then stored durably before the
// receipt says delivered. A wake-up is sent to a listening device only for
// messages that ask for it, within the sender's quota and the device's
// daily budget.
func (m *Mailbox) deposit(_ context.Context, src string, frames [][]byte) []message.Result {
	n := m.n
	results := make([]message.Result, len(frames))
	var todo []checked
	for i, f := range frames {
		n.stats.received.Add(1)
		env, sender, err := m.precheck(src, f)
		if err != nil {
			results[i] = refusal(f, err)
			if env != nil && env.Wake {
				n.stats.wakeDenied[wakeDenyUnauthorized].Add(1)
			}
			continue
		}
		todo = append(todo, checked{i, env, sender})
	}
	valid := n.verifyAll(todo)
	var ok []checked
	for j, c := range todo {
		if !valid[j] {
			results[c.i] = refusal(frames[c.i], fmt.Errorf("%w: message from %s", identity.ErrBadSignature, c.env.From))
			if c.env.Wake {
				n.stats.wakeDenied[wakeDenyUnauthorized].Add(1)
			}
			continue
		}
		ok = append(ok, c)
	}
	stored, wakes, errs := m.store(ok)
	for j, c := range ok {
		if errs[j] != nil {
			results[c.i] = refusal(frames[c.i], errs[j])
			continue
		}
		results[c.i] = message.Result{Hash: c.env.Hash[:]}
	}
	n.stats.stored.Add(uint64(stored))
	for device, waiting := range wakes {
		m.wake(device, waiting)
	}
	return results
}

func (m *Mailbox) precheck(src string, f []byte) (*message.Envelope, *message.Device, error) {
	n := m.n
	if d := n.peerLimit.AllowMessage(src, len(f)); !d.Allowed {
		return nil, nil, fmt.Errorf("%w: %s (retry after %v)", message.ErrRateLimited, src, d.RetryAfter)
	}
	env, err := message.Decode(f)
	if err != nil {
		return nil, nil, err
	}
	if env.Chain != n.auth.ChainID() {
		return env, nil, fmt.Errorf("%w: it is for chain %s, this is %s", message.ErrWrongReceiver, env.Chain, n.auth.ChainID())
	}
	to, err := n.auth.Device(env.To)
	if err != nil || !to.MailboxAt(n.id) {
		return env, nil, fmt.Errorf("%w: %s", message.ErrNoMailbox, env.To)
	}
	sender, err := n.checkSender(env)
	if err != nil {
		return env, nil, err
	}
	if ok, err := n.auth.Granted(sender, env.Kind, "device:"+env.To); err != nil {
		return env, nil, err
	} else if !ok {
		return env, nil, fmt.Errorf("%w: %s may not send a %s to %s", message.ErrNotGranted, env.From, env.Kind, env.To)
	}
	m.mu.Lock()
	w, err := m.window(env.From, env.To)
	fresh := err == nil && w.Fresh(env.Seq)
	m.mu.Unlock()
	if err != nil {
		return env, nil, err
	}
	if !fresh {
		return env, nil, fmt.Errorf("%w: %d from %s to %s", message.ErrReplay, env.Seq, env.From, env.To)
	}
	return env, sender, nil
}

// window returns the replay window of sender → receiver; m.mu is held.
func (m *Mailbox) window(from, to string) (*message.ReplayWindow, error) {
	k := from + "\x00" + to
	if w, ok := m.windows[k]; ok {
		return w, nil
	}
	w := &message.ReplayWindow{}
	v, closer, err := m.db.Get([]byte("r/" + k))
	switch {
	case err == nil:
		err := w.UnmarshalBinary(v)
		closer.Close()
		if err != nil {
			return nil, err
		}
	case !errors.Is(err, pebble.ErrNotFound):
		return nil, fmt.Errorf("mesh: mailbox replay state: %w", err)
	}
	if len(m.windows) > 100_000 {
		clear(m.windows) // all are in the store
	}
	m.windows[k] = w
	return w, nil
}

// heldBy is what a sender holds in a device's mailbox (key: receiver
// "\x00" sender); m.mu is held.
func (m *Mailbox) heldBy(k string) (heldCount, error) {
	if h, ok := m.held[k]; ok {
		return h, nil
	}
	var h heldCount
	v, closer, err := m.db.Get([]byte("n/" + k))
	switch {
	case err == nil:
		if len(v) == 16 {
			h = heldCount{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])}
		}
		closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return h, fmt.Errorf("mesh: mailbox counts: %w", err)
	}
	if len(m.held) > 100_000 {
		clear(m.held) // all are in the store
	}
	m.held[k] = h
	return h, nil
}

// senderOf is the sender of a stored message ("" if it does not decode).
func senderOf(raw []byte) string {
	env, err := message.Decode(raw)
	if err != nil {
		return ""
	}
	return env.From
}

// share is what one sender may hold of a device's mailbox while others
// hold messages there too: half of it. So a sender, even a granted one
// that floods, cannot push the others' messages out; alone in the box it
// only pushes out its own oldest.
func (m *Mailbox) share() heldCount {
	return heldCount{N: uint64(max(1, m.cfg.MaxMessages/2)), Bytes: uint64(max(1, m.cfg.MaxBytes/2))}
}

// store writes verified messages in one synced batch with their replay
// windows, counters and wake counts; the oldest messages of a full box are
// dropped. It returns how many were stored, the devices to wake (with
// their waiting counts) and an error per message.
func (m *Mailbox) store(msgs []checked) (int, map[string]uint64, []error) {
	errs := make([]error, len(msgs))
	if len(msgs) == 0 {
		return 0, nil, errs
	}
	b := m.db.NewIndexedBatch()
	stored, wakes, synced, err := m.stage(b, msgs, errs)
	// The batch was applied (visible to readers, in order) under m.mu; its
	// fsync is waited for here, after m.mu is released, so other deposits,
	// pulls and acks go on meanwhile and their fsyncs group in Pebble's
	// WAL. A message is acknowledged only once its batch is durable.
	if serr := synced(); err == nil {
		err = serr
	}
	if err != nil {
		err = fmt.Errorf("mesh: mailbox store: %w", err)
		for j := range errs {
			if errs[j] == nil {
				errs[j] = err
			}
		}
		return 0, nil, errs
	}
	return stored, wakes, errs
}

// stage checks msgs against the mailbox under m.mu, writes the ones that
// fit into b and applies b (see apply); errs gets an error per refused
// message. It returns what store returns, the wait for b's fsync, and an
// error if b could not be applied (the mailbox is then unchanged).
func (m *Mailbox) stage(b *pebble.Batch, msgs []checked, errs []error) (int, map[string]uint64, func() error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	boxes := map[string]*boxState{}
	windows := map[string]message.ReplayWindow{}
	helds := map[string]heldCount{}   // receiver "\x00" sender
	wakeCounts := map[string]uint64{} // key -> count today after this batch
	share := m.share()
	heldBy := func(k string) (heldCount, error) {
		if h, ok := helds[k]; ok {
			return h, nil
		}
		return m.heldBy(k)
	}
	wakes := map[string]uint64{}
	day := m.n.timeNow().Unix() / 86400
	var dropped []string
	stored := 0
	for j, c := range msgs {
		env := c.env
		wk := env.From + "\x00" + env.To
		w, ok := windows[wk]
		if !ok {
			cur, err := m.window(env.From, env.To)
			if err != nil {
				errs[j] = err
				continue
			}
			w = *cur
		}
		if !w.Fresh(env.Seq) {
			errs[j] = fmt.Errorf("%w: %d from %s to %s", message.ErrReplay, env.Seq, env.From, env.To)
			continue
		}
		box := boxes[env.To]
		if box == nil {
			box = new(boxState)
			if cur := m.boxes[env.To]; cur != nil {
				*box = *cur
			}
			if box.Next == 0 {
				box.Next, box.Head = 1, 1 // message numbers start at 1
			}
			boxes[env.To] = box
		}
		hk := env.To + "\x00" + env.From
		h, err := heldBy(hk)
		if err != nil {
			errs[j] = err
			continue
		}
		if (h.N >= share.N || h.Bytes+uint64(len(env.Raw)) > share.Bytes) && h.N < box.Count {
			errs[j] = fmt.Errorf("%w: %s holds %d messages (%d bytes) of %s's mailbox, its share while others' wait there: more when %s reads its mail",
				message.ErrRateLimited, env.From, h.N, h.Bytes, env.To, env.To)
			continue
		}
		w.Mark(env.Seq)
		windows[wk] = w
		_ = b.Set([]byte("r/"+wk), w.MarshalBinary(), nil)

		_ = b.Set(msgKey(env.To, box.Next), env.Raw, nil)
		box.Next++
		box.Count++
		box.Bytes += uint64(len(env.Raw))
		helds[hk] = heldCount{h.N + 1, h.Bytes + uint64(len(env.Raw))}
		for box.Count > uint64(m.cfg.MaxMessages) || box.Bytes > uint64(m.cfg.MaxBytes) {
			k := msgKey(env.To, box.Head)
			v, closer, err := b.Get(k)
			if err == nil {
				box.Bytes -= uint64(len(v))
				if from := senderOf(v); from != "" {
					if oh, err := heldBy(env.To + "\x00" + from); err == nil {
						helds[env.To+"\x00"+from] = oh.less(len(v))
					}
				}
				closer.Close()
			}
			_ = b.Delete(k, nil)
			box.Head++
			box.Count--
			dropped = append(dropped, env.To)
		}
		stored++

		if env.Wake && m.listening(env.To) {
			if m.allowWake(b, wakeCounts, c, day) {
				wakes[env.To] = box.Count
			}
		}
	}
	for id, box := range boxes {
		v, err := message.Marshal(box)
		if err != nil {
			panic(err) // a struct of integers
		}
		_ = b.Set([]byte("c/"+id), v, nil)
	}
	setHeld(b, helds)
	synced, err := m.apply(b)
	if err != nil {
		return 0, nil, synced, err
	}
	for k, w := range windows {
		m.windows[k] = &w
	}
	maps.Copy(m.held, helds)
	for id, box := range boxes {
		old := m.boxes[id]
		if old != nil {
			m.depth -= old.Count
			m.bytes -= old.Bytes
		}
		m.depth += box.Count
		m.bytes += box.Bytes
		m.boxes[id] = box
	}
	for _, id := range dropped {
		m.n.stats.dropped.Add(1)
		m.log.Warn("mesh: mailbox full, oldest message dropped", "device", id,
			"max_messages", m.cfg.MaxMessages, "max_bytes", m.cfg.MaxBytes)
	}
	return stored, wakes, synced, nil
}

// allowWake spends one wake-up of the sender's quota and the device's
// budget for today if both have one left; m.mu is held.
func (m *Mailbox) allowWake(b *pebble.Batch, counts map[string]uint64, c checked, day int64) bool {
	n := m.n
	to, err := n.auth.Device(c.env.To)
	if err != nil {
		n.stats.wakeDenied[wakeDenyUnauthorized].Add(1)
		return false
	}
	devKey := string(dayKey("w/"+c.env.To+"\x00", day))
	sndKey := string(dayKey("s/"+c.env.From+"\x00"+c.env.To+"\x00", day))
	get := func(k string) uint64 {
		if v, ok := counts[k]; ok {
			return v
		}
		v, closer, err := m.db.Get([]byte(k))
		if err != nil {
			return 0
		}
		defer closer.Close()
		if len(v) != 8 {
			return 0
		}
		return binary.BigEndian.Uint64(v)
	}
	dev, snd := get(devKey), get(sndKey)
	if snd >= uint64(m.cfg.SenderWakesPerDay) {
		n.stats.wakeDenied[wakeDenySenderQuota].Add(1)
		return false
	}
	def := m.cfg.DownlinksPerDay
	if v, ok := m.cfg.DownlinksPerClass[to.Class]; ok {
		def = v
	}
	if dev >= uint64(to.DownlinkBudget(def)) {
		n.stats.wakeDenied[wakeDenyDeviceBudget].Add(1)
		return false
	}
	counts[devKey], counts[sndKey] = dev+1, snd+1
	_ = b.Set([]byte(devKey), binary.BigEndian.AppendUint64(nil, dev+1), nil)
	_ = b.Set([]byte(sndKey), binary.BigEndian.AppendUint64(nil, snd+1), nil)
	return true
}

func (m *Mailbox) listening(device string) bool {
	m.wakeMu.Lock()
	defer m.wakeMu.Unlock()
	return m.wakers[device] != nil
}

// wakeFrame is what a sleeping device receives: how many messages wait.
type wakeFrame struct {
	Waiting uint64 `cbor:"1,keyasint"`
}

// wake tells a listening device that messages wait. A device not listening
// just finds them at its next scheduled wake.
func (m *Mailbox) wake(device string, waiting uint64) {
	m.wakeMu.Lock()
	w := m.wakers[device]
	m.wakeMu.Unlock()
	if w == nil {
		return
	}
	b, _ := message.Marshal(wakeFrame{Waiting: waiting})
	w.mu.Lock()
	err := writeFrame(w.w, b)
	if err == nil {
		err = w.w.Flush()
	}
	w.mu.Unlock()
	if err != nil {
		return
	}
	m.n.stats.wakes.Add(1)
}

// sleepRequest opens a wake channel or a pull: who the device is.
type sleepRequest struct {
	Device string `cbor:"1,keyasint"`
	Max    uint64 `cbor:"2,keyasint,omitempty"` // pull: messages at most
}

// ownerOf reads the first frame of a device's stream and checks that the
// peer is that device (its current ledger key) and that it is active and
// keeps its mailbox here.
func (m *Mailbox) ownerOf(s network.Stream, r *bufio.Reader) (*sleepRequest, error) {
	_ = s.SetReadDeadline(time.Now().Add(30 * time.Second))
	f, err := readFrame(r, 1024)
	if err != nil {
		return nil, err
	}
	var req sleepRequest
	if err := message.Unmarshal(f, &req); err != nil {
		return nil, fmt.Errorf("%w: %v", message.ErrMalformed, err)
	}
	d, err := m.n.auth.Device(req.Device)
	if err != nil {
		return nil, err
	}
	pub, err := m.n.peerKey(s.Conn().RemotePeer())
	if err != nil || !pub.Equal(d.Key) {
		return nil, fmt.Errorf("%w: peer is not %s", message.ErrPeerMismatch, req.Device)
	}
	if !d.Active {
		return nil, fmt.Errorf("%w: %s", message.ErrInactiveSender, req.Device)
	}
	if !d.MailboxAt(m.n.id) {
		return nil, fmt.Errorf("%w: %s", message.ErrNoMailbox, req.Device)
	}
	_ = s.SetReadDeadline(time.Time{})
	return &req, nil
}

// serveWake keeps a sleeping device's wake channel until it closes it.
func (m *Mailbox) serveWake(s network.Stream) {
	r := bufio.NewReader(s)
	req, err := m.ownerOf(s, r)
	if err != nil {
		m.log.Debug("mesh: wake channel refused", "peer", s.Conn().RemotePeer(), "err", err)
		s.Reset()
		return
	}
	m.n.host.ConnManager().Protect(s.Conn().RemotePeer(), deviceTag)
	w := &waker{w: bufio.NewWriter(s), s: s}
	m.wakeMu.Lock()
	if old := m.wakers[req.Device]; old != nil {
		old.s.Reset()
	}
	m.wakers[req.Device] = w
	m.wakeMu.Unlock()
	_, _ = io.Copy(io.Discard, r) // until the device closes it
	m.wakeMu.Lock()
	if m.wakers[req.Device] == w {
		delete(m.wakers, req.Device)
	}
	m.wakeMu.Unlock()
	s.Close()
}

// pullItem is one held message.
type pullItem struct {
	Seq uint64 `cbor:"1,keyasint"`
	Env []byte `cbor:"2,keyasint"`
}

// pullBatch answers a pull request; the device then acknowledges.
type pullBatch struct {
	Items []pullItem `cbor:"1,keyasint"`
	More  bool       `cbor:"2,keyasint,omitempty"`
}

// pullAck acknowledges every message up to and including Upto; the
// gateway deletes them and answers with what is left.
type pullAck struct {
	Upto uint64 `cbor:"1,keyasint"`
	Done bool   `cbor:"2,keyasint,omitempty"` // no further request on this stream
}

type pullLeft struct {
	Left uint64 `cbor:"1,keyasint"`
}

const maxPull = 64

// servePull hands a device its held messages, in order, in batches; a
// message is deleted only when the device acknowledges it.
func (m *Mailbox) servePull(s network.Stream) {
	defer s.Close()
	r := bufio.NewReaderSize(s, 16<<10)
	w := bufio.NewWriterSize(s, 64<<10)
	req, err := m.ownerOf(s, r)
	if err != nil {
		m.log.Debug("mesh: pull refused", "peer", s.Conn().RemotePeer(), "err", err)
		s.Reset()
		return
	}
	m.n.host.ConnManager().Protect(s.Conn().RemotePeer(), deviceTag)
	max := req.Max
	if max == 0 || max > maxPull {
		max = maxPull
	}
	for {
		batch, err := m.list(req.Device, max)
		if err != nil {
			s.Reset()
			return
		}
		b, _ := message.Marshal(batch)
		if writeFrame(w, b) != nil || w.Flush() != nil {
			s.Reset()
			return
		}
		_ = s.SetReadDeadline(time.Now().Add(time.Minute))
		f, err := readFrame(r, 64)
		if err != nil {
			return
		}
		var ack pullAck
		if err := message.Unmarshal(f, &ack); err != nil {
			s.Reset()
			return
		}
		left, err := m.ack(req.Device, ack.Upto)
		if err != nil {
			s.Reset()
			return
		}
		if ack.Done || len(batch.Items) == 0 {
			b, _ := message.Marshal(pullLeft{Left: left})
			_ = writeFrame(w, b)
			_ = w.Flush()
			return
		}
	}
}

func (m *Mailbox) list(device string, max uint64) (*pullBatch, error) {
	m.mu.Lock()
	box := m.boxes[device]
	var head, count uint64
	if box != nil {
		head, count = box.Head, box.Count
	}
	m.mu.Unlock()
	out := &pullBatch{}
	if count == 0 {
		return out, nil
	}
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: msgKey(device, head), UpperBound: []byte("q/" + device + "\x01")})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if uint64(len(out.Items)) == max {
			out.More = true
			break
		}
		k := it.Key()
		out.Items = append(out.Items, pullItem{Seq: binary.BigEndian.Uint64(k[len(k)-8:]), Env: append([]byte(nil), it.Value()...)})
	}
	return out, it.Error()
}

// ack deletes a device's messages up to upto and returns how many remain,
// once the deletion is durable (its fsync waited for outside m.mu).
func (m *Mailbox) ack(device string, upto uint64) (uint64, error) {
	b := m.db.NewBatch()
	left, synced, err := m.stageAck(b, device, upto)
	if serr := synced(); err == nil && serr != nil {
		err = fmt.Errorf("mesh: mailbox ack: %w", serr)
	}
	return left, err
}

// stageAck writes the deletion of ack into b and applies it under m.mu.
func (m *Mailbox) stageAck(b *pebble.Batch, device string, upto uint64) (uint64, func() error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	closeOnly := func() error { return b.Close() }
	box := m.boxes[device]
	if box == nil || box.Count == 0 || upto < box.Head {
		if box == nil {
			return 0, closeOnly, nil
		}
		return box.Count, closeOnly, nil
	}
	if upto >= box.Next {
		upto = box.Next - 1
	}
	next := *box
	helds := map[string]heldCount{}
	for seq := box.Head; seq <= upto; seq++ {
		k := msgKey(device, seq)
		v, closer, err := m.db.Get(k)
		if err == nil {
			next.Bytes -= uint64(len(v))
			if from := senderOf(v); from != "" {
				hk := device + "\x00" + from
				h, ok := helds[hk]
				if !ok {
					h, _ = m.heldBy(hk)
				}
				helds[hk] = h.less(len(v))
			}
			closer.Close()
		}
		_ = b.Delete(k, nil)
		next.Count--
	}
	next.Head = upto + 1
	v, _ := message.Marshal(&next)
	_ = b.Set([]byte("c/"+device), v, nil)
	setHeld(b, helds)
	synced, err := m.apply(b)
	if err != nil {
		return box.Count, synced, fmt.Errorf("mesh: mailbox ack: %w", err)
	}
	maps.Copy(m.held, helds)
	m.n.stats.pulled.Add(box.Count - next.Count)
	m.depth -= box.Count - next.Count
	m.bytes -= box.Bytes - next.Bytes
	*box = next
	return box.Count, synced, nil
}

// setHeld writes senders' counts into b (none held: the key goes).
func setHeld(b *pebble.Batch, helds map[string]heldCount) {
	for k, h := range helds {
		if h == (heldCount{}) {
			_ = b.Delete([]byte("n/"+k), nil)
		} else {
			_ = b.Set([]byte("n/"+k), h.marshal(), nil)
		}
	}
}
