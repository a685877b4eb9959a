package ratelimit

import (
	"container/list"
	"fmt"
	"sync"
	"time"
)

// MaxKeyLen is the longest key, in bytes, that a Limiter tracks; longer
// keys are refused (ReasonInvalid), so that keys cannot exhaust memory.
const MaxKeyLen = 256

// Limiter enforces Limits per key. Create it with New.
type Limiter struct {
	limits  Limits
	maxKeys int
	clock   Clock
	epoch   time.Time // the clock at New: refusals are counted in slots from it

	mu      sync.Mutex
	entries map[string]*entry
	// lru holds the entries, most recently used first.
	lru *list.List
	// violators holds the entries with refusals, for Offenders.
	violators map[string]*entry
}

// entry is the state of one key.
type entry struct {
	key                string
	msgs, bytes, conns float64       // tokens in each bucket
	last               time.Time     // when the buckets were last refilled
	elem               *list.Element // in Limiter.lru
	viol               *violations   // nil until the key is first refused
}

// New returns a Limiter that enforces l on each of at most maxKeys keys,
// with time from clock (nil for SystemClock). It panics if l is invalid
// (check configuration with Limits.Validate first) or maxKeys < 1.
func New(l Limits, maxKeys int, clock Clock) *Limiter {
	if err := l.Validate(); err != nil {
		panic(fmt.Sprintf("ratelimit.New: %v", err))
	}
	if maxKeys < 1 {
		panic(fmt.Sprintf("ratelimit.New: maxKeys is %d, want 1 or more", maxKeys))
	}
	if clock == nil {
		clock = SystemClock()
	}
	return &Limiter{
		limits:    l,
		maxKeys:   maxKeys,
		clock:     clock,
		epoch:     clock.Now(),
		entries:   make(map[string]*entry),
		lru:       list.New(),
		violators: make(map[string]*entry),
	}
}

// Limits returns the limits l enforces.
func (l *Limiter) Limits() Limits { return l.limits }

// Len returns the number of keys tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// AllowMessage decides whether key may send a message of size bytes: the
// size must be at most MaxPacket, and the message and byte buckets must
// hold one message and size bytes. An allowed message takes them; a
// refused one takes nothing and counts as a violation.
func (l *Limiter) AllowMessage(key string, size int) Decision {
	if !validKey(key) || size < 0 {
		return Decision{Reason: ReasonInvalid}
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.get(key, now)
	if size > l.limits.MaxPacket {
		l.violation(e, now)
		return Decision{Reason: ReasonPacketTooLarge}
	}
	l.refill(e, now)
	if e.msgs < 1 || e.bytes < float64(size) {
		l.violation(e, now)
		wait := max(retryAfter(1-e.msgs, l.limits.MsgsPerSec), retryAfter(float64(size)-e.bytes, l.limits.BytesPerSec))
		if e.msgs < 1 {
			return Decision{Reason: ReasonRate, RetryAfter: wait}
		}
		return Decision{Reason: ReasonBytes, RetryAfter: wait}
	}
	e.msgs--
	e.bytes -= float64(size)
	return Decision{Allowed: true}
}

// AllowConnect decides whether key may make a connection attempt now. A
// refusal counts as a violation.
func (l *Limiter) AllowConnect(key string) Decision {
	if !validKey(key) {
		return Decision{Reason: ReasonInvalid}
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.get(key, now)
	l.refill(e, now)
	if e.conns < 1 {
		l.violation(e, now)
		return Decision{Reason: ReasonConnectRate, RetryAfter: retryAfter(1-e.conns, l.limits.ConnectsPerSec)}
	}
	e.conns--
	return Decision{Allowed: true}
}

func validKey(key string) bool { return key != "" && len(key) <= MaxKeyLen }

// get returns key's entry, made with full buckets if new, as the most
// recently used; l.mu is held.
func (l *Limiter) get(key string, now time.Time) *entry {
	if e, ok := l.entries[key]; ok {
		l.lru.MoveToFront(e.elem)
		return e
	}
	if len(l.entries) >= l.maxKeys {
		old := l.lru.Remove(l.lru.Back()).(*entry)
		delete(l.entries, old.key)
		delete(l.violators, old.key)
	}
	e := &entry{
		key:   key,
		msgs:  float64(l.limits.Burst),
		bytes: float64(l.limits.ByteBurst),
		conns: float64(l.limits.ConnectBurst),
		last:  now,
	}
	l.entries[key] = e
	e.elem = l.lru.PushFront(e)
	return e
}

// refill adds the tokens earned since the last refill, up to each burst.
// A clock that goes back earns nothing, and the refill time never goes
// back, so no tokens are earned twice.
func (l *Limiter) refill(e *entry, now time.Time) {
	dt := now.Sub(e.last).Seconds()
	if dt <= 0 {
		return
	}
	e.last = now
	e.msgs = min(float64(l.limits.Burst), e.msgs+dt*l.limits.MsgsPerSec)
	e.bytes = min(float64(l.limits.ByteBurst), e.bytes+dt*l.limits.BytesPerSec)
	e.conns = min(float64(l.limits.ConnectBurst), e.conns+dt*l.limits.ConnectsPerSec)
}
