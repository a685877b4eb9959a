package ledger

import (
	"errors"
	"strings"
	"sync"

	"github.com/thingnet/thingnet/agreements"
	"github.com/thingnet/thingnet/agreements/lang"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// The caches below only skip repeated work on the same input: each holds
// the result of a pure function, so a hit and a miss give the same answer
// and every node stays deterministic whatever its cache holds.

// txCache remembers decoded txs by their bytes between CheckTx, rechecks,
// preverification and FinalizeBlock, so a tx is decoded once per node.
// It is keyed by the bytes themselves, not their SHA-256: a tx is looked
// up about six times per node, and Go's map hash of a few hundred bytes
// costs a fraction of a SHA-256 (the hash is computed once, by DecodeTx).
// Decoded txs are never modified after decoding.
type txCache struct {
	mu   sync.Mutex
	m    map[string]*record.Tx
	ring []string
	next int
}

func newTxCache(size int) *txCache {
	return &txCache{m: make(map[string]*record.Tx, size), ring: make([]string, size)}
}

// decode returns the decoded tx for raw, from the cache or by decoding it.
// Only successfully decoded txs are cached.
func (c *txCache) decode(raw []byte) (*record.Tx, error) {
	if len(raw) > record.MaxTxBytes {
		return record.DecodeTx(raw) // refused for its size, uncached
	}
	c.mu.Lock()
	tx, ok := c.m[string(raw)] // no copy: the compiler looks up raw's bytes
	c.mu.Unlock()
	if ok {
		return tx, nil
	}
	tx, err := record.DecodeTx(raw)
	if err != nil {
		return nil, err
	}
	key := string(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok {
		if old := c.ring[c.next]; old != "" {
			delete(c.m, old)
		}
		c.ring[c.next] = key
		c.m[key] = tx
		c.next = (c.next + 1) % len(c.ring)
	}
	return tx, nil
}

// progCache keeps compiled agreements (compiling is pure, so a cache
// cannot make nodes diverge).
type progCache struct {
	mu    sync.Mutex
	m     map[string]*agreements.Program
	order []string
	max   int
}

func newProgCache(n int) *progCache { return &progCache{m: map[string]*agreements.Program{}, max: n} }

// Program compiles (or returns the cached) program of an agreement.
func (c *progCache) get(a *record.Agreement) (*agreements.Program, error) {
	var b strings.Builder
	b.Write(a.Hash)
	for _, p := range a.Parties {
		b.WriteString("\x00" + p.Name + "=" + p.Principal)
	}
	key := b.String()
	if c != nil {
		c.mu.Lock()
		p := c.m[key]
		c.mu.Unlock()
		if p != nil {
			return p, nil
		}
	}
	p, err := compileAgreement(a.Source, a.Parties)
	if err != nil {
		return nil, err
	}
	if c != nil {
		c.mu.Lock()
		if _, ok := c.m[key]; !ok {
			c.m[key] = p
			c.order = append(c.order, key)
			if len(c.order) > c.max {
				delete(c.m, c.order[0])
				c.order = c.order[1:]
			}
		}
		c.mu.Unlock()
	}
	return p, nil
}

func compileAgreement(src []byte, parties []record.AgreementParty) (*agreements.Program, error) {
	d, err := lang.Parse(src)
	if err != nil {
		return nil, err
	}
	bind := make(map[string]string, len(parties))
	for _, p := range parties {
		bind[p.Name] = p.Principal
	}
	return agreements.Compile(d, bind, lang.DefaultLimits())
}

// CompileAgreement compiles a deployed agreement (for readers: the API
// shows its state by variable name).
func CompileAgreement(a *record.Agreement) (*agreements.Program, error) {
	return compileAgreement(a.Source, a.Parties)
}

// Program returns a deployed agreement's compiled program from the
// application's cache (for readers: the API shows state by variable name).
func (a *App) Program(ag *record.Agreement) (*agreements.Program, error) {
	return a.progs.get(ag)
}

// signerMemo remembers what CheckTx and PreCheckTx read about a signer in
// the latest committed version (its last nonce and its key, or why it has
// none), so that a signer's txs arriving between two commits, their
// pre-checks and the rechecks after a commit read the state once. A
// committed version never changes, so the memo gives the answers the reads
// would; it is dropped when CheckTx moves to a newer version. Storage
// errors are never remembered.
type signerMemo struct {
	mu      sync.Mutex
	version int64
	m       map[string]signerReads
	max     int
}

type signerReads struct {
	nonce  uint64
	pub    identity.PublicKey
	keyErr error // signerKey's refusal (a *record.Error), if any
}

func newSignerMemo(max int) *signerMemo {
	return &signerMemo{m: map[string]signerReads{}, max: max}
}

// get returns signer's reads in st, a committed version.
func (c *signerMemo) get(st *State, signer string, keys *identity.DIDCache) (signerReads, error) {
	c.mu.Lock()
	if st.Height > c.version { // an older version (a pre-check racing a commit) is read, not remembered
		c.version = st.Height
		clear(c.m)
	}
	r, ok := c.m[signer]
	ok = ok && c.version == st.Height
	c.mu.Unlock()
	if ok {
		return r, nil
	}
	nonce, err := st.Nonce(signer)
	if err != nil {
		return r, err
	}
	pub, _, keyErr := signerKey(st, signer, keys)
	var refused *record.Error
	if keyErr != nil && !errors.As(keyErr, &refused) {
		return r, keyErr
	}
	r = signerReads{nonce: nonce, pub: pub, keyErr: keyErr}
	c.mu.Lock()
	if c.version == st.Height && len(c.m) < c.max {
		c.m[signer] = r
	}
	c.mu.Unlock()
	return r, nil
}
