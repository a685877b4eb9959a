package coap

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/gateway/edge"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
)

// fakeIngest is a gateway core in memory that checks readings for real:
// it decodes them with reading.Decode, verifies the signature with the
// device's known key, and refuses a sequence number at or below the last
// one it stored (a resend of the very envelope it stored last is
// edge.ErrDuplicate, as with the gateway).
type fakeIngest struct {
	entered chan []byte   // when gate is set: an Ingest call began
	release chan struct{} // when gate is set: lets one Ingest call go on

	mu      sync.Mutex
	keys    map[string]identity.PublicKey
	gate    bool   // Ingest waits for release (or its context)
	gateSrc string // if set, only Ingest calls from this source wait
	fail    error  // returned by Ingest instead of storing, if set
	calls   int
	sources []string
	last    map[string]uint64
	lastRaw map[string][]byte
	stored  [][]byte
}

func newFakeIngest() *fakeIngest {
	return &fakeIngest{
		entered: make(chan []byte, 64), release: make(chan struct{}),
		keys: map[string]identity.PublicKey{}, last: map[string]uint64{}, lastRaw: map[string][]byte{},
	}
}

func (f *fakeIngest) register(k *identity.Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[k.ID()] = k.Public()
}

func (f *fakeIngest) setGate(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = on
}

// gateSource makes only Ingest calls from source wait.
func (f *fakeIngest) gateSource(source string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate, f.gateSrc = true, source
}

func (f *fakeIngest) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeIngest) Ingest(ctx context.Context, dev string, payload []byte, source string) error {
	f.mu.Lock()
	f.calls++
	f.sources = append(f.sources, source)
	gate, fail := f.gate && (f.gateSrc == "" || f.gateSrc == source), f.fail
	f.mu.Unlock()
	if dev != "" {
		return fmt.Errorf("%w: CoAP authenticates no device, got device id %q", edge.ErrRejected, dev)
	}
	if gate {
		f.entered <- payload
		select {
		case <-f.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	env, err := reading.Decode(payload)
	if err != nil {
		return fmt.Errorf("%w: %v", edge.ErrRejected, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	pub, ok := f.keys[env.Signer()]
	if !ok {
		return fmt.Errorf("%w: unknown device %s", edge.ErrRejected, env.Signer())
	}
	if err := env.Verify(pub); err != nil {
		return fmt.Errorf("%w: %v", edge.ErrRejected, err)
	}
	seqs := env.Seqs()
	if seqs[0] <= f.last[env.Device] {
		if bytes.Equal(payload, f.lastRaw[env.Device]) {
			return fmt.Errorf("%w: %s seq %d", edge.ErrDuplicate, env.Device, seqs[len(seqs)-1])
		}
		return fmt.Errorf("%w: %s: seq %d is not above %d (replay)", edge.ErrRejected, env.Device, seqs[0], f.last[env.Device])
	}
	f.last[env.Device] = seqs[len(seqs)-1]
	f.lastRaw[env.Device] = bytes.Clone(payload)
	f.stored = append(f.stored, bytes.Clone(payload))
	return nil
}

func (f *fakeIngest) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeIngest) storedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.stored)
}

func (f *fakeIngest) has(payload []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.stored {
		if bytes.Equal(p, payload) {
			return true
		}
	}
	return false
}

func (f *fakeIngest) lastSource() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sources) == 0 {
		return ""
	}
	return f.sources[len(f.sources)-1]
}

// waitEntered waits for a gated Ingest call to begin.
func (f *fakeIngest) waitEntered(t *testing.T) []byte {
	t.Helper()
	select {
	case p := <-f.entered:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("Ingest was not called within 5 s")
		return nil
	}
}

// fakeLimiter gives each key a budget of messages (no refill, so tests are
// deterministic); keys without a budget are unlimited.
type fakeLimiter struct {
	mu     sync.Mutex
	budget map[string]int
	asked  map[string]int
	bytes  map[string]int
}

func newFakeLimiter() *fakeLimiter {
	return &fakeLimiter{budget: map[string]int{}, asked: map[string]int{}, bytes: map[string]int{}}
}

func (l *fakeLimiter) set(key string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.budget[key] = n
}

func (l *fakeLimiter) AllowMessage(key string, size int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked[key]++
	l.bytes[key] += size
	n, ok := l.budget[key]
	if !ok {
		return true
	}
	if n <= 0 {
		return false
	}
	l.budget[key] = n - 1
	return true
}

func (l *fakeLimiter) count(key string) (msgs, bytes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.asked[key], l.bytes[key]
}

// device is a device key that signs readings with increasing seqs.
type device struct {
	key *identity.Key
	seq uint64
}

func newDevice(t testing.TB, f *fakeIngest) *device {
	t.Helper()
	k := testutil.Key(t, identity.Ed25519)
	f.register(k)
	return &device{key: k}
}

// reading returns a signed reading with the next seq.
func (d *device) reading(t testing.TB) []byte {
	t.Helper()
	d.seq++
	return d.signed(t, d.seq, 21.5)
}

// signed returns a signed reading of seq with value v.
func (d *device) signed(t testing.TB, seq uint64, v float64) []byte {
	t.Helper()
	b, err := reading.Sign(d.key, d.key.ID(), reading.Reading{
		Seq: seq, Time: time.Now(), ContentType: "temperature/celsius", Value: &v,
	})
	if err != nil {
		t.Fatalf("reading.Sign: %v", err)
	}
	return b
}

// large returns a signed batch of n readings of size bytes each.
func (d *device) large(t testing.TB, n, size int) []byte {
	t.Helper()
	rs := make([]reading.Reading, n)
	for i := range rs {
		d.seq++
		b := bytes.Repeat([]byte{byte(i)}, size)
		rs[i] = reading.Reading{Seq: d.seq, Time: time.Now(), ContentType: "image/jpeg", Bytes: b}
	}
	b, err := reading.Sign(d.key, d.key.ID(), rs...)
	if err != nil {
		t.Fatalf("reading.Sign: %v", err)
	}
	return b
}

// tamper returns env with one signature bit flipped.
func tamper(env []byte) []byte {
	b := bytes.Clone(env)
	b[len(b)-1] ^= 1
	return b
}
