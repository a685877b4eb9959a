package mqtt

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/gateway/edge"
)

// Devices of the fake ledger.
const (
	devA       = "did:key:z6MkDeviceA"
	devB       = "did:key:z6MkDeviceB"
	devRevoked = "did:key:z6MkRevoked"
	devUnknown = "did:key:z6MkUnknown"
)

// fakeAuth is a ledger of devices and a token scheme that behaves like a
// CWT for the broker: a token binds a device id and an expiry with a MAC
// under the fake's secret (standing in for the device key), behind a CBOR
// tag byte so it travels as binary like a real CWT.
type fakeAuth struct {
	secret []byte
	mu     sync.Mutex
	status map[string]string // device id -> "active", "suspended", "revoked"
	calls  int
}

func newFakeAuth() *fakeAuth {
	return &fakeAuth{
		secret: []byte("device keys"),
		status: map[string]string{devA: "active", devB: "active", devRevoked: "revoked"},
	}
}

// token returns a token of dev valid until exp, signed with secret.
func fakeToken(secret []byte, dev string, exp time.Time) []byte {
	body := dev + "|" + strconv.FormatInt(exp.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(body))
	return append([]byte{0xd2}, body+"|"+hex.EncodeToString(mac.Sum(nil))...)
}

func (a *fakeAuth) token(dev string) []byte {
	return fakeToken(a.secret, dev, time.Now().Add(time.Hour))
}

func (a *fakeAuth) Authenticate(_ context.Context, dev string, token []byte) error {
	a.mu.Lock()
	a.calls++
	st, ok := a.status[dev]
	a.mu.Unlock()
	if strings.HasPrefix(dev, "did:key:z6MkChurn") {
		st, ok = "active", true
	}
	if !ok {
		return fmt.Errorf("%w: %s", edge.ErrUnknownDevice, dev)
	}
	if st != "active" {
		return fmt.Errorf("%w: %s is %s", edge.ErrInactiveDevice, dev, st)
	}
	parts := strings.Split(string(token[min(1, len(token)):]), "|")
	if len(token) == 0 || token[0] != 0xd2 || len(parts) != 3 {
		return fmt.Errorf("%w: not a CWT", edge.ErrBadToken)
	}
	mac := hmac.New(sha256.New, a.secret)
	mac.Write([]byte(parts[0] + "|" + parts[1]))
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(parts[2])) {
		return fmt.Errorf("%w: signature does not verify", edge.ErrBadToken)
	}
	if parts[0] != dev {
		return fmt.Errorf("%w: token is for %s", edge.ErrBadToken, parts[0])
	}
	if exp, _ := strconv.ParseInt(parts[1], 10, 64); time.Now().Unix() > exp {
		return fmt.Errorf("%w: token expired", edge.ErrBadToken)
	}
	return nil
}

func (a *fakeAuth) setStatus(dev, st string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status[dev] = st
}

func (a *fakeAuth) callCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

// stored is a reading the fake Ingestor stored.
type stored struct {
	device, source string
	payload        []byte
}

// fakeIngest stores readings in memory. Payloads choose its answer: "bad..."
// edge.ErrRejected, "busy..." edge.ErrOverloaded, "dup..." edge.ErrDuplicate, "fail..." an
// error of its own, "block..." waits for release (or its context) and then
// stores; anything else is stored.
type fakeIngest struct {
	entered chan string   // a "block..." payload entered Ingest
	release chan struct{} // lets one blocked Ingest go on

	mu     sync.Mutex
	stored []stored
	last   chan struct{} // closed when the last Submit's Ingest returned
}

func newFakeIngest() *fakeIngest {
	return &fakeIngest{entered: make(chan string, 16), release: make(chan struct{})}
}

func (f *fakeIngest) Ingest(ctx context.Context, dev string, payload []byte, source string) error {
	p := string(payload)
	switch {
	case strings.HasPrefix(p, "bad"):
		return fmt.Errorf("%w: signature of %s does not verify", edge.ErrRejected, dev)
	case strings.HasPrefix(p, "busy"):
		return fmt.Errorf("%w: queue full", edge.ErrOverloaded)
	case strings.HasPrefix(p, "dup"):
		return fmt.Errorf("%w: seq 7 of %s", edge.ErrDuplicate, dev)
	case strings.HasPrefix(p, "fail"):
		return errors.New("disk on fire")
	case strings.HasPrefix(p, "block"):
		f.entered <- p
		select {
		case <-f.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stored = append(f.stored, stored{device: dev, source: source, payload: bytes.Clone(payload)})
	return nil
}

// Submit makes the fake an edge.Pipeliner, so that the tests run the
// broker's pipelined path (QoS 0 and 1): Ingest runs in a goroutine, after
// the previous Submit's, so readings are stored in the order they came. A
// "block..." one waits for release, or at most IngestTimeout's default.
func (f *fakeIngest) Submit(ctx context.Context, dev string, payload []byte, source string) <-chan error {
	res, done := make(chan error, 1), make(chan struct{})
	f.mu.Lock()
	prev := f.last
	f.last = done
	f.mu.Unlock()
	go func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		ctx, cancel := context.WithTimeout(context.Background(), DefaultIngestTimeout)
		defer cancel()
		res <- f.Ingest(ctx, dev, payload, source)
	}()
	return res
}

// idle waits until every envelope submitted so far has been answered
// (Submit stores in a goroutine of its own).
func (f *fakeIngest) idle() {
	f.mu.Lock()
	last := f.last
	f.mu.Unlock()
	if last != nil {
		<-last
	}
}

// has reports whether payload is stored for dev.
func (f *fakeIngest) has(dev, payload string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.stored {
		if s.device == dev && string(s.payload) == payload {
			return true
		}
	}
	return false
}

func (f *fakeIngest) count(dev string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.stored {
		if s.device == dev {
			n++
		}
	}
	return n
}

// fakeACL grants exact topic filters to devices.
type fakeACL struct {
	mu     sync.Mutex
	grants map[string]map[string]bool
}

func (a *fakeACL) MaySubscribe(dev, filter string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.grants[dev][filter]
}

func (a *fakeACL) grant(dev string, filters ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.grants == nil {
		a.grants = map[string]map[string]bool{}
	}
	if a.grants[dev] == nil {
		a.grants[dev] = map[string]bool{}
	}
	for _, f := range filters {
		a.grants[dev][f] = true
	}
}

func (a *fakeACL) revoke(dev, filter string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.grants[dev], filter)
}

// fakeLimiter gives each key a budget of connects and messages (no refill,
// so tests are deterministic); keys without a budget are unlimited.
type fakeLimiter struct {
	mu       sync.Mutex
	connects map[string]int
	messages map[string]int
	asked    []string // AllowConnect keys, in order
}

func newFakeLimiter() *fakeLimiter {
	return &fakeLimiter{connects: map[string]int{}, messages: map[string]int{}}
}

func (l *fakeLimiter) AllowConnect(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked = append(l.asked, key)
	return take(l.connects, key)
}

func (l *fakeLimiter) AllowMessage(key string, _ int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return take(l.messages, key)
}

func take(budget map[string]int, key string) bool {
	n, ok := budget[key]
	if !ok {
		return true
	}
	if n <= 0 {
		return false
	}
	budget[key] = n - 1
	return true
}

func (l *fakeLimiter) setConnects(key string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.connects[key] = n
}

func (l *fakeLimiter) setMessages(key string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.messages[key] = n
}

func (l *fakeLimiter) askedKeys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.asked...)
}

// env is a running broker with its fakes.
type env struct {
	b      *Broker
	addr   string
	auth   *fakeAuth
	ingest *fakeIngest
	acl    *fakeACL
	limits *fakeLimiter
}

// startBroker starts a broker on a free loopback port; edit may change its
// Config. The broker is closed when the test ends.
func startBroker(t testing.TB, edit func(*Config)) *env {
	t.Helper()
	e := &env{auth: newFakeAuth(), ingest: newFakeIngest(), acl: &fakeACL{}, limits: newFakeLimiter()}
	c := Config{
		Listen: "127.0.0.1:0",
		Logger: testLogger(),
		Auth:   e.auth, Ingest: e.ingest, ACL: e.acl, Limits: e.limits,
	}
	if edit != nil {
		edit(&c)
	}
	b, err := Start(c)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	e.b, e.addr = b, b.Addr()
	return e
}

// testLogger logs to stderr when THINGNET_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("THINGNET_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
