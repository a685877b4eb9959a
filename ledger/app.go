package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cosmos/iavl"
	iavldb "github.com/cosmos/iavl/db"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// AppVersion is the application protocol version of a ledger before any
// upgrade; the state's version (State.AppVersion) is reported to CometBFT.
const AppVersion = 1

// Config configures the ledger application. The zero value keeps state in
// memory (tests); nodes set Dir.
type Config struct {
	Dir          string       // state database directory; "" keeps state in memory
	Logger       *slog.Logger // nil discards
	KeepVersions int64        // past state versions kept for proofs; default 1000
	SigCacheSize int          // verified signatures remembered between CheckTx and FinalizeBlock; default 65536
	CacheNodes   int          // IAVL node cache size; default 100000
	// PreCheckBatch is the most signatures PreCheckTx gathers from
	// concurrent callers into one batch verification (sigbatch.go);
	// default 64, 1 verifies each on its own. PreCheckWait is how long
	// a batch's first caller waits for it to fill (default 0: only while
	// the previous batch is being verified).
	PreCheckBatch int
	PreCheckWait  time.Duration
	// Upgrades are the state migrations this binary carries besides its
	// own (upgrade.go); tests add some.
	Upgrades []Upgrade

	// State sync snapshots (snapshot.go): one every SnapshotInterval
	// heights (0: none), SnapshotKeep kept (default 2), in chunks of
	// SnapshotChunkBytes (default DefaultSnapshotChunkBytes).
	SnapshotInterval   int64
	SnapshotKeep       int
	SnapshotChunkBytes int
	// Retain is the block retention policy (retain.go); zero keeps every block.
	Retain RetainPolicy
}

// App is the thingnet ABCI application.
type App struct {
	abci.BaseApplication

	log *slog.Logger
	cfg Config
	db  iavldb.DB
	// tree is the working state: touched only by the consensus connection's
	// calls (InitChain, FinalizeBlock, Commit; CometBFT serialises them) and
	// by state sync's, which end before consensus starts. CheckTx, queries
	// and PreCheckTx run concurrently with those (chain.ConcurrentApp) and
	// read committed versions only.
	tree *iavl.MutableTree
	// reads loads committed versions for readers, with its own node cache:
	// IAVL's working tree rewrites fields of the persisted nodes it shares
	// with its committed versions (Node.clone drops child pointers), so
	// readers of a version must not use the working tree's node objects.
	reads    *iavl.MutableTree
	sigs     *sigCache
	keys     *identity.DIDCache
	txs      *txCache
	batcher  *sigBatcher                     // PreCheckTx's batches (sigbatch.go)
	signers  *signerMemo                     // CheckTx's reads of the committed version
	progs    *progCache                      // compiled agreements
	snap     *snapshots                      // state sync (snapshot.go)
	retain   *retention                      // block retention (retain.go)
	verified atomic.Uint64                   // signatures verified (individually or in batches)
	rejected [record.CodeCount]atomic.Uint64 // CheckTx rejections by code

	upgrades upgradeSet // the migrations this binary carries (upgrade.go)
	halt     chan error // why the ledger refuses to go on (Halted)

	mu        sync.RWMutex
	committed *iavl.ImmutableTree // latest committed version, for readers
	saved     struct {            // the working tree's last saved version, for Info
		height int64
		hash   []byte
	}
	chainID string
	nonces  *poolNonces        // CheckTx: the signers' nonces in the mempool (pool.go)
	inPool  map[string]int     // CheckTx: txs in the mempool per charge (governance.go)
	gov     *record.Governance // the committed state's governance
	closed  bool
}

var _ abci.Application = (*App)(nil)

// NewApp opens (or creates) the state database and loads the latest version.
func NewApp(c Config) (*App, error) {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.KeepVersions <= 0 {
		c.KeepVersions = 1000
	}
	if c.SigCacheSize <= 0 {
		c.SigCacheSize = 1 << 16
	}
	if c.CacheNodes <= 0 {
		c.CacheNodes = 100_000
	}
	if c.PreCheckBatch <= 0 {
		c.PreCheckBatch = 64
	}
	db, tree, reads, err := openState(c) // snapshot.go
	if err != nil {
		return nil, err
	}
	snap, err := newSnapshots(c)
	if err != nil {
		db.Close()
		return nil, err
	}
	upgrades, err := newUpgradeSet(append(knownUpgrades(), c.Upgrades...))
	if err != nil {
		db.Close()
		return nil, err
	}
	a := &App{upgrades: upgrades, halt: make(chan error, 1), log: c.Logger, cfg: c, db: db, tree: tree, reads: reads, sigs: newSigCache(c.SigCacheSize), keys: identity.NewDIDCache(c.SigCacheSize), txs: newTxCache(c.SigCacheSize), batcher: newSigBatcher(c.PreCheckBatch, runtime.GOMAXPROCS(0), c.PreCheckWait), signers: newSignerMemo(c.SigCacheSize), progs: newProgCache(1024), nonces: newPoolNonces(), inPool: map[string]int{},
		snap: snap, retain: &retention{p: c.Retain}}
	if err := a.refreshCommitted(); err != nil {
		db.Close()
		return nil, err
	}
	if a.committed != nil {
		if err := upgrades.checkVersion(&State{r: a.committed, Height: a.committed.Version()}); err != nil {
			db.Close()
			return nil, err
		}
	}
	return a, nil
}

func (a *App) refreshCommitted() error {
	v := a.tree.Version()
	var imm *iavl.ImmutableTree
	if v > 0 {
		var err error
		if imm, err = a.reads.GetImmutable(v); err != nil {
			return fmt.Errorf("loading state version %d: %w", v, err)
		}
	}
	hash := a.tree.Hash()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.committed = imm
	a.saved.height, a.saved.hash = v, hash
	if imm != nil {
		st := &State{r: imm, Height: v}
		id, err := st.ChainID()
		if err != nil {
			return err
		}
		a.chainID = id
		if a.gov, err = st.Governance(); err != nil {
			return err
		}
	}
	a.nonces.commit()
	clear(a.inPool) // the recheck after each commit counts again what stays
	return nil
}

// Close closes the state database.
func (a *App) Close() error {
	a.snap.stopAndWait()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	return a.db.Close()
}

// Info tells CometBFT where the application is, so it can replay blocks.
func (a *App) Info(context.Context, *abci.RequestInfo) (*abci.ResponseInfo, error) {
	version := uint64(AppVersion)
	a.mu.RLock()
	if a.committed != nil {
		v, err := (&State{r: a.committed, Height: a.committed.Version()}).AppVersion()
		if err != nil {
			a.mu.RUnlock()
			return nil, err
		}
		version = v
	}
	height, hash := a.saved.height, a.saved.hash
	a.mu.RUnlock()
	return &abci.ResponseInfo{
		Data:             "thingnet",
		Version:          "thingnet/1",
		AppVersion:       version,
		LastBlockHeight:  height,
		LastBlockAppHash: hash,
	}, nil
}

// InitChain writes the genesis state and the initial validator set.
func (a *App) InitChain(_ context.Context, req *abci.RequestInitChain) (*abci.ResponseInitChain, error) {
	g, err := ParseGenesis(req.AppStateBytes)
	if err != nil {
		return nil, err
	}
	if req.InitialHeight > 1 {
		a.tree.SetInitialVersion(uint64(req.InitialHeight))
	}
	buf := newBuffer(a.tree)
	buf.set([]byte(record.KeyChainID), []byte(req.ChainId))
	g.apply(buf)
	var vals []record.Validator
	for _, v := range req.Validators {
		pk := v.PubKey.GetEd25519()
		if len(pk) != 32 {
			return nil, fmt.Errorf("genesis validator key %v is not Ed25519", v.PubKey)
		}
		buf.set(validatorKey(pk), &record.Validator{PubKey: pk, Power: v.Power})
		vals = append(vals, record.Validator{PubKey: pk, Power: v.Power})
	}
	if err := genesisValidators(buf, vals); err != nil { // evidence.go
		return nil, err
	}
	if err := buf.flush(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.chainID = req.ChainId
	a.mu.Unlock()
	a.log.Info("ledger genesis", "chain_id", req.ChainId, "orgs", len(g.Orgs), "validators", len(req.Validators))
	return &abci.ResponseInitChain{AppHash: a.tree.WorkingHash()}, nil
}

// CheckTx admits a tx to the mempool: cheap stateless checks first (size,
// encoding, kind, chain, expiry), then the signer and nonce against the last
// committed state, and the signature last.
func (a *App) CheckTx(_ context.Context, req *abci.RequestCheckTx) (*abci.ResponseCheckTx, error) {
	tx, err := a.txs.decode(req.Tx)
	if err == nil {
		err = a.checkTx(tx, req.Type == abci.CheckTxType_Recheck)
	}
	if err != nil {
		if c := record.CodeOf(err); int(c) < len(a.rejected) {
			a.rejected[c].Add(1)
		}
		a.log.Debug("checktx rejected", "reason", record.CodeOf(err).String(), "err", err)
		return &abci.ResponseCheckTx{Code: uint32(record.CodeOf(err)), Log: logOf(err), Codespace: record.Codespace}, nil
	}
	return &abci.ResponseCheckTx{Code: 0, GasWanted: 1}, nil
}

// PreCheckTx verifies a new tx's signature ahead of CheckTx
// (chain.ConcurrentApp): CometBFT calls it from the goroutine submitting the
// tx, outside the mempool connection's lock, so several txs are verified on
// several cores at once while CheckTx stays serialised. The result only
// fills the signature cache, which CheckTx and FinalizeBlock consult; every
// check is still made by CheckTx, so PreCheckTx changes no answer. CheckTx's
// cheap checks come first (signer, chain, expiry, nonce against the
// mempool's, the organisation's mempool budget) so that a tx CheckTx would
// refuse for them costs no verification; a tx whose predecessor is still
// being checked is left for CheckTx to verify.
func (a *App) PreCheckTx(raw []byte) {
	tx, err := a.txs.decode(raw)
	if err != nil {
		return
	}
	a.mu.RLock()
	committed, chainID, pending := a.committed, a.chainID, a.nonces.next[tx.Signer]
	a.mu.RUnlock()
	if committed == nil {
		return
	}
	st := &State{r: committed, Height: committed.Version()}
	r, err := a.signers.get(st, tx.Signer, a.keys)
	if err != nil || r.keyErr != nil || checkEnvelope(tx, chainID, st.Height+1, max(r.nonce, pending)) != nil {
		return
	}
	a.mu.RLock()
	_, err = a.mempoolCharge(st, tx, false)
	a.mu.RUnlock()
	if err != nil {
		return
	}
	_ = a.verifyWith(tx, r.pub, a.batcher) // a bad signature is refused by CheckTx, which tries again
}

// checkTx checks tx against the last committed state. A recheck (after each
// block, for every tx left in the mempool) only redoes what a block can
// change cheaply — nonce and expiry — so that it costs little per tx; a tx
// whose signer was suspended meanwhile is refused when executed. A recheck
// keeps a tx past a nonce gap for one block, as the mempool may hold the
// txs between behind it (pool.go).
func (a *App) checkTx(tx *record.Tx, recheck bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.committed == nil {
		return record.Errf(record.CodeInvalid, "the ledger has no committed state yet")
	}
	st := &State{r: a.committed, Height: a.committed.Version()}
	r, err := a.signers.get(st, tx.Signer, a.keys)
	if err != nil {
		return err
	}
	last := a.nonces.last(tx.Signer, r.nonce)
	ahead := recheck && tx.Nonce > last+1
	envelopeLast := last
	if ahead {
		envelopeLast = tx.Nonce - 1 // its chain and expiry are checked all the same
	}
	if err := checkEnvelope(tx, a.chainID, st.Height+1, envelopeLast); err != nil {
		return err
	}
	charge, err := a.mempoolCharge(st, tx, recheck)
	if err != nil {
		return err
	}
	if !recheck {
		if r.keyErr != nil {
			return r.keyErr
		}
		if err := a.verify(tx, r.pub); err != nil {
			return err
		}
	}
	if ahead {
		if err := a.nonces.keepAhead(tx, last); err != nil {
			return err
		}
	} else {
		a.nonces.admit(tx)
	}
	a.inPool[charge]++
	return nil
}

// mempoolCharge returns what tx is charged to in the mempool ("" when
// governance sets no mempool budget), refusing a new tx of an
// organisation that holds its whole share. A recheck is never refused for
// it: those txs are in the mempool already. a.mu is held (read-locked at
// least); it changes nothing.
func (a *App) mempoolCharge(st *State, tx *record.Tx, recheck bool) (string, error) {
	if a.gov == nil || a.gov.MempoolTxs == 0 {
		return "", nil
	}
	c, err := chargeOf(st, tx.Signer, tx.Kind)
	if err != nil || c == "" {
		return "", err
	}
	if !recheck && a.inPool[c] >= a.gov.MempoolTxs {
		return "", record.Errf(record.CodeOverBudget, "%s has %d txs waiting in this node's mempool, its whole share (mempool_txs_per_org); retry after the next blocks", c, a.inPool[c])
	}
	return c, nil
}

// verify checks tx's signature with pub, unless this node already did.
func (a *App) verify(tx *record.Tx, pub identity.PublicKey) error {
	return a.verifyWith(tx, pub, nil)
}

// verifyWith is verify, checking the signature in a batch gathered by
// batcher if it is not nil (PreCheckTx), on its own otherwise.
func (a *App) verifyWith(tx *record.Tx, pub identity.PublicKey, batcher *sigBatcher) error {
	k := sigCacheKey(tx.Hash, pub.Bytes)
	if a.sigs.has(k) {
		return nil
	}
	if pub.Alg != tx.Envelope.Alg {
		return record.Errf(record.CodeBadSignature, "signed with %s but %s's key is %s", tx.Envelope.Alg, tx.Signer, pub.Alg)
	}
	a.verified.Add(1)
	var ok bool
	if batcher != nil {
		tbs, err := tx.Envelope.ToBeSigned(nil)
		ok = err == nil && batcher.verify(pub, tbs, tx.Envelope.Signature)
	} else {
		ok = tx.Envelope.Verify(pub, nil) == nil
	}
	if !ok {
		return record.Errf(record.CodeBadSignature, "signature does not verify with %s's key", tx.Signer)
	}
	a.sigs.add(tx.Hash, k)
	return nil
}

// PrepareProposal puts each signer's txs in nonce order (pool.go) and
// respects the byte limit and each organisation's block budget
// (governance.go): a tx over either, or one that would fail for its nonce,
// chain or expiry, stays in the mempool for the next blocks.
func (a *App) PrepareProposal(_ context.Context, req *abci.RequestPrepareProposal) (*abci.ResponsePrepareProposal, error) {
	raws := a.inNonceOrder(req.Txs)
	g, charges, err := a.blockCharges(raws)
	if err != nil {
		return nil, err
	}
	budget := newBudgetCounter(g.BlockTxs)
	nonces := a.proposalNonces(req.Height)
	txs := make([][]byte, 0, len(raws))
	var size int64
	for i, raw := range raws {
		if len(raw) > record.MaxTxBytes || size+int64(len(raw)) > req.MaxTxBytes {
			continue
		}
		tx, ok, err := nonces.fits(raw)
		if err != nil {
			return nil, err
		}
		if !ok || !budget.take(charges[i]) {
			continue
		}
		nonces.take(tx)
		txs = append(txs, raw)
		size += int64(len(raw))
	}
	return &abci.ResponsePrepareProposal{Txs: txs}, nil
}

// ProcessProposal rejects blocks that carry oversized txs or more txs of
// one organisation than its block budget; everything else is judged tx by
// tx in FinalizeBlock.
func (a *App) ProcessProposal(_ context.Context, req *abci.RequestProcessProposal) (*abci.ResponseProcessProposal, error) {
	for _, raw := range req.Txs {
		if len(raw) > record.MaxTxBytes {
			return &abci.ResponseProcessProposal{Status: abci.ResponseProcessProposal_REJECT}, nil
		}
	}
	g, charges, err := a.blockCharges(req.Txs)
	if err != nil {
		return nil, err
	}
	budget := newBudgetCounter(g.BlockTxs)
	for _, c := range charges {
		if !budget.take(c) {
			a.log.Warn("proposal rejected: an organisation over its block budget", "height", req.Height, "charged", c, "budget", g.BlockTxs)
			return &abci.ResponseProcessProposal{Status: abci.ResponseProcessProposal_REJECT}, nil
		}
	}
	return &abci.ResponseProcessProposal{Status: abci.ResponseProcessProposal_ACCEPT}, nil
}

// FinalizeBlock executes the block's txs in order against the working state.
func (a *App) FinalizeBlock(_ context.Context, req *abci.RequestFinalizeBlock) (*abci.ResponseFinalizeBlock, error) {
	a.mu.RLock()
	chainID := a.chainID
	a.mu.RUnlock()
	start := time.Now() // for the log only; execution never reads the clock
	// A planned upgrade runs before anything else of its block (upgrade.go).
	params, upEvents, err := a.runUpgrade(req.Height)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", req.Height, err)
	}
	// Byzantine validators are removed before the txs run (evidence.go).
	valUpdates, evEvents, err := a.applyEvidence(req.Height, req.Misbehavior)
	if err != nil {
		return nil, fmt.Errorf("block %d evidence: %w", req.Height, err)
	}
	pre := a.preverify(req.Txs, req.Height)
	results := make([]*abci.ExecTxResult, len(req.Txs))
	for i, raw := range req.Txs {
		res, vals, err := a.deliver(raw, pre[i], chainID, req.Height)
		if err != nil {
			return nil, fmt.Errorf("block %d tx %d: %w", req.Height, i, err) // storage failure: halt, never diverge
		}
		results[i] = res
		valUpdates = append(valUpdates, vals...)
	}
	scheduled, err := a.runScheduled(req.Height) // agreements' height triggers (schedule.go)
	if err != nil {
		return nil, fmt.Errorf("block %d agreements: %w", req.Height, err)
	}
	hash := a.tree.WorkingHash()
	a.log.Debug("block executed", "height", req.Height, "txs", len(req.Txs), "took", time.Since(start))
	return &abci.ResponseFinalizeBlock{
		TxResults:             results,
		ValidatorUpdates:      mergeValidatorUpdates(valUpdates),
		ConsensusParamUpdates: params,
		Events:                append(append(abciEvents(upEvents), evEvents...), abciEvents(scheduled)...),
		AppHash:               hash,
	}, nil
}

// deliver executes one tx. It returns an error only when storage fails; a
// rejected tx is a result with a non-zero code and leaves only its nonce used.
func (a *App) deliver(raw []byte, pre preverified, chainID string, height int64) (*abci.ExecTxResult, []abci.ValidatorUpdate, error) {
	reject := func(err error) (*abci.ExecTxResult, []abci.ValidatorUpdate, error) {
		var e *record.Error
		if !errors.As(err, &e) {
			return nil, nil, err
		}
		return &abci.ExecTxResult{Code: uint32(e.Code), Log: e.Msg, Codespace: record.Codespace}, nil, nil
	}
	tx, err := a.txs.decode(raw)
	if err != nil {
		return reject(err)
	}
	buf := newBuffer(a.tree)
	st := &State{r: buf, Height: height - 1}
	last, err := st.Nonce(tx.Signer)
	if err != nil {
		return nil, nil, err
	}
	if err := checkEnvelope(tx, chainID, height, last); err != nil {
		return reject(err)
	}
	pub, dev, err := signerKey(st, tx.Signer, a.keys)
	if err != nil {
		return reject(err)
	}
	if pre.done && pre.pub.Equal(pub) {
		if !pre.valid {
			return reject(record.Errf(record.CodeBadSignature, "signature does not verify with %s's key", tx.Signer))
		}
	} else if err := a.verify(tx, pub); err != nil {
		return reject(err)
	}
	// From here the tx is authentic: its nonce is used even if it fails.
	x := &txExec{st: st, buf: buf, tx: tx, chainID: chainID, height: height, device: dev, progs: a.progs}
	execErr := x.run()
	if execErr != nil {
		buf.reset()
	}
	buf.set(record.NonceKey(tx.Signer), u64bytes(tx.Nonce))
	if err := buf.flush(); err != nil {
		return nil, nil, err
	}
	if execErr != nil {
		return reject(execErr)
	}
	events := append([]abci.Event{{Type: "tx", Attributes: []abci.EventAttribute{
		{Key: "kind", Value: tx.Kind, Index: true}, {Key: "signer", Value: tx.Signer, Index: true},
	}}}, x.events...)
	return &abci.ExecTxResult{Code: 0, Events: events}, x.valUpdates, nil
}

// Commit persists the block's state as a new version and prunes old ones.
func (a *App) Commit(context.Context, *abci.RequestCommit) (*abci.ResponseCommit, error) {
	start := time.Now()
	_, v, err := a.tree.SaveVersion()
	defer func() { a.log.Debug("state committed", "height", v, "took", time.Since(start)) }()
	if err != nil {
		return nil, fmt.Errorf("saving state: %w", err)
	}
	// Prune every 100 blocks, or every keep blocks when fewer are kept.
	if keep := a.cfg.KeepVersions; v > keep && v%min(100, keep) == 0 {
		to := a.snap.pruneLimit(v - keep) // never a version being exported
		if err := a.tree.DeleteVersionsTo(to); err != nil {
			a.log.Warn("pruning old state versions", "to", to, "err", err)
		}
	}
	if err := a.refreshCommitted(); err != nil {
		return nil, err
	}
	a.snapshotAfterCommit(v)
	return &abci.ResponseCommit{RetainHeight: a.retain.retainHeight(v, a.snap.oldestServed())}, nil
}

// Rejections returns CheckTx rejections so far by reason, every reason
// present (zeros included); safe to call at any time.
func (a *App) Rejections() map[string]uint64 {
	out := make(map[string]uint64, record.CodeCount-1)
	for c := record.Code(1); c < record.CodeCount; c++ {
		out[c.String()] = a.rejected[c].Load()
	}
	return out
}

// Verifications returns how many signatures this node has verified.
func (a *App) Verifications() uint64 { return a.verified.Load() }

func u64bytes(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
