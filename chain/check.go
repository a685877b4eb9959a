package chain

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	dbm "github.com/cometbft/cometbft-db"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	sm "github.com/cometbft/cometbft/state"
	"github.com/cometbft/cometbft/store"
	"github.com/cometbft/cometbft/types"
	"github.com/cosmos/gogoproto/proto"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// BlockFinding is one alteration CheckBlocks found in a node's stores:
// the height of the block and what was altered. Fields are those of
// CometBFT's header ("app_hash", "data_hash", "time", ...), or "header"
// (its hash differs from the one the validators signed, with no derivable
// field to blame), "tx" (Index: which transaction), "commit_signature"
// (Index: which signature), "commit" (the stored commit is not of this
// block), "block" (missing or undecodable), "part_set" (the block's parts
// differ from those the validators signed), "state.*" (the node's state
// store disagrees with a header the validators signed) and "ledger" (the
// application state's hash at a height differs from the signed app hash).
type BlockFinding struct {
	Height int64  `json:"height"`
	Field  string `json:"field"`
	Index  int    `json:"index,omitempty"`
	Detail string `json:"detail"`
}

// BlockCheckConfig configures CheckBlocks.
type BlockCheckConfig struct {
	// DataDir is the node's CometBFT data directory (blockstore.db,
	// state.db, tx_index.db). The node must be stopped; the stores are
	// opened read-only.
	DataDir string
	// AppHash, if set, returns the application's state hash after block h
	// (the ledger's own history), compared with the app hash of header h+1;
	// an error means the version is not available (pruned) and is skipped.
	AppHash func(h int64) ([]byte, error)
}

// BlockReport is what CheckBlocks found.
type BlockReport struct {
	ChainID      string `json:"chain_id"`
	Base         int64  `json:"base"`
	Height       int64  `json:"height"`
	AppHashesMet int    `json:"app_hashes_checked"` // heights whose ledger state hash was compared
	// LastBlockHash is the hash of the last block as its commit signs it
	// (as stored if the commit does not verify): compare it with another
	// node's to know the whole store is that network's chain.
	LastBlockHash []byte `json:"last_block_hash"`
	// AppHash is the app hash in the last header whose hash the validators'
	// signatures confirm: the hash of the application's state after block
	// AppHashOf. Records read from that state can be proved against it.
	AppHash   []byte         `json:"app_hash"`
	AppHashOf int64          `json:"app_hash_of"`
	Findings  []BlockFinding `json:"findings"`
}

// CheckBlocks checks every block of a node's block store offline: each
// block's header hash against the block ID its commit's signatures sign,
// those signatures against the validator set of the height (state store),
// the hash chain (each header's last_block_id is the previous block's ID),
// the data hash against the transactions (naming each transaction the
// node's transaction index does not know), the last commit, evidence,
// validators, consensus params and last results hashes against what they
// are computed from, the header time against the median of the last
// commit's timestamps, and the app hash against the state store's
// FinalizeBlock answers and the application's history (AppHash). It
// reports every altered height and field; an untouched store reports
// nothing.
func CheckBlocks(c BlockCheckConfig) (*BlockReport, error) {
	ro := &opt.Options{ReadOnly: true, ErrorIfMissing: true}
	open := func(name string) (dbm.DB, error) {
		if _, err := os.Stat(filepath.Join(c.DataDir, name+".db")); err != nil {
			return nil, fmt.Errorf("chain: check: %w", err)
		}
		db, err := dbm.NewGoLevelDBWithOpts(name, c.DataDir, ro)
		if err != nil {
			return nil, fmt.Errorf("chain: check: open %s read-only (is the node stopped?): %w", filepath.Join(c.DataDir, name+".db"), err)
		}
		return db, nil
	}
	bdb, err := open("blockstore")
	if err != nil {
		return nil, err
	}
	defer bdb.Close()
	sdb, err := open("state")
	if err != nil {
		return nil, err
	}
	defer sdb.Close()
	var tdb dbm.DB
	if _, err := os.Stat(filepath.Join(c.DataDir, "tx_index.db")); err == nil {
		if tdb, err = open("tx_index"); err != nil {
			return nil, err
		}
		defer tdb.Close()
	}
	bs := store.NewBlockStore(bdb)
	ss := sm.NewStore(sdb, sm.StoreOptions{})
	state, err := ss.Load()
	if err != nil {
		return nil, fmt.Errorf("chain: check: load state: %w", err)
	}
	k := &blockCheck{c: c, bs: bs, ss: ss, tx: tdb, rep: &BlockReport{ChainID: state.ChainID, Base: bs.Base(), Height: bs.Height()}}
	k.initial = state.InitialHeight
	if k.initial == 0 {
		k.initial = 1
	}
	var prev *types.BlockID
	for h := k.rep.Base; h > 0 && h <= k.rep.Height; h++ {
		prev = k.height(h, prev)
	}
	if prev != nil {
		k.rep.LastBlockHash = prev.Hash
	}
	return k.rep, nil
}

type blockCheck struct {
	c       BlockCheckConfig
	bs      *store.BlockStore
	ss      sm.Store
	tx      dbm.DB
	rep     *BlockReport
	initial int64
}

func (k *blockCheck) add(h int64, field string, index int, format string, args ...any) {
	k.rep.Findings = append(k.rep.Findings, BlockFinding{Height: h, Field: field, Index: index, Detail: fmt.Sprintf(format, args...)})
}

// sources names what a header field is computed from, for messages.
var sources = map[string]string{
	"block":                  "the previous block",
	"txs":                    "the block's transactions",
	"last_commit":            "the block's last commit",
	"evidence":               "the block's evidence",
	"state.validators":       "the state store's validator set",
	"state.consensus_params": "the state store's consensus params",
	"state.finalize_block":   "the state store's FinalizeBlock answer of the previous height",
}

// find returns the finding of height h and field, if any.
func (k *blockCheck) find(h int64, field string) *BlockFinding {
	for i := range k.rep.Findings {
		if f := &k.rep.Findings[i]; f.Height == h && f.Field == field {
			return f
		}
	}
	return nil
}

// try runs a block store read that panics on undecodable records.
func try[T any](f func() T) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return f(), nil
}

// height checks block h; prev is the ID of block h-1 as stored (nil if
// unknown). It returns the ID of block h as stored.
func (k *blockCheck) height(h int64, prev *types.BlockID) *types.BlockID {
	meta, err := try(func() *types.BlockMeta { return k.bs.LoadBlockMeta(h) })
	if err != nil || meta == nil {
		k.add(h, "block", 0, "the block meta is missing or does not decode: %v", err)
		return nil
	}
	b, err := k.loadBlock(h, meta)
	if err != nil {
		k.add(h, "block", 0, "the block's parts are missing or do not decode: %v", err)
		return nil
	}
	ps, err := b.MakePartSet(types.BlockPartSizeBytes)
	if err != nil {
		k.add(h, "block", 0, "cannot split the block into parts: %v", err)
		return nil
	}
	id := types.BlockID{Hash: b.Hash(), PartSetHeader: ps.Header()}

	// What the validators signed: the commit for h (from block h+1, or the
	// seen commit of the last block), checked signature by signature.
	vals, verr := k.ss.LoadValidators(h)
	signed, signedOK := k.commit(h, vals, verr)
	headerOK := signedOK && bytes.Equal(signed.Hash, id.Hash)
	if headerOK && h > k.initial {
		k.rep.AppHash, k.rep.AppHashOf = b.AppHash, h-1
	}
	if signedOK && !headerOK {
		defer func(n int) {
			if len(k.rep.Findings) == n {
				k.add(h, "header", 0, "the header hashes to %X, the validators signed %X", id.Hash, signed.Hash)
			}
		}(len(k.rep.Findings))
	}
	// field reports a header field that disagrees with what it is computed
	// from: the header's fault if its hash is not the signed one, else the
	// fault of the store it was computed from.
	field := func(name, from string, got, want []byte) {
		if bytes.Equal(got, want) {
			return
		}
		if headerOK {
			k.add(h, from, 0, "the signed header's %s is %X; %s gives %X", name, got, sources[from], want)
			return
		}
		k.add(h, name, 0, "the header's %s is %X; %s gives %X", name, got, sources[from], want)
	}

	hd := &b.Header
	if hd.Height != h {
		k.add(h, "height", 0, "the header at height %d says height %d", h, hd.Height)
	}
	if hd.ChainID != k.rep.ChainID {
		k.add(h, "chain_id", 0, "the header's chain id is %q, the chain's %q", hd.ChainID, k.rep.ChainID)
	}
	if prev != nil && !hd.LastBlockID.Equals(*prev) {
		field("last_block_id", "block", hd.LastBlockID.Hash, prev.Hash)
		if bytes.Equal(hd.LastBlockID.Hash, prev.Hash) {
			k.add(h, "last_block_id", 0, "the header's last block parts %v differ from block %d's %v", hd.LastBlockID.PartSetHeader, h-1, prev.PartSetHeader)
		}
	}
	if !bytes.Equal(hd.DataHash, b.Data.Hash()) {
		if headerOK {
			k.txs(h, b)
		} else {
			field("data_hash", "txs", hd.DataHash, b.Data.Hash())
		}
	}
	if !bytes.Equal(hd.LastCommitHash, b.LastCommit.Hash()) {
		field("last_commit_hash", "last_commit", hd.LastCommitHash, b.LastCommit.Hash())
	}
	if !bytes.Equal(hd.EvidenceHash, b.Evidence.Hash()) {
		field("evidence_hash", "evidence", hd.EvidenceHash, b.Evidence.Hash())
	}
	if verr == nil {
		field("validators_hash", "state.validators", hd.ValidatorsHash, vals.Hash())
		if _, v := vals.GetByAddress(hd.ProposerAddress); v == nil {
			k.add(h, "proposer_address", 0, "the proposer %X is not a validator of height %d", hd.ProposerAddress, h)
		}
	} else {
		k.add(h, "state.validators", 0, "the validator set of height %d is not in the state store: %v", h, verr)
	}
	if next, err := k.ss.LoadValidators(h + 1); err == nil {
		field("next_validators_hash", "state.validators", hd.NextValidatorsHash, next.Hash())
	}
	if params, err := k.ss.LoadConsensusParams(h); err == nil {
		field("consensus_hash", "state.consensus_params", hd.ConsensusHash, params.Hash())
	}
	if h > k.initial {
		if res, err := k.ss.LoadFinalizeBlockResponse(h - 1); err == nil && res != nil {
			field("app_hash", "state.finalize_block", hd.AppHash, res.AppHash)
			field("last_results_hash", "state.finalize_block", hd.LastResultsHash, types.NewResults(res.TxResults).Hash())
		}
		if lastVals, err := k.ss.LoadValidators(h - 1); err == nil && b.LastCommit != nil {
			if t, err := sm.MedianTime(b.LastCommit, lastVals); err == nil && !t.Equal(hd.Time) {
				if headerOK {
					k.add(h, "last_commit", 0, "the signed header's time %v is not the median %v of its last commit's timestamps", hd.Time, t)
				} else {
					k.add(h, "time", 0, "the header's time is %v; the median of its last commit's timestamps is %v", hd.Time, t)
				}
			}
		}
		if k.c.AppHash != nil {
			if app, err := k.c.AppHash(h - 1); err == nil {
				k.rep.AppHashesMet++
				if !bytes.Equal(app, hd.AppHash) {
					if headerOK {
						k.add(h, "ledger", 0, "the ledger's state after block %d hashes to %X; the validators signed app hash %X", h-1, app, []byte(hd.AppHash))
					} else if f := k.find(h, "app_hash"); f != nil {
						f.Detail += fmt.Sprintf("; the ledger's state after block %d hashes to %X", h-1, app)
					} else {
						k.add(h, "app_hash", 0, "the header's app_hash is %X; the ledger's state after block %d hashes to %X", []byte(hd.AppHash), h-1, app)
					}
				}
			}
		}
	}
	if headerOK && !signed.PartSetHeader.Equals(id.PartSetHeader) && bytes.Equal(hd.DataHash, b.Data.Hash()) {
		k.add(h, "part_set", 0, "the block's parts hash to %X, the validators signed %X", id.PartSetHeader.Hash, signed.PartSetHeader.Hash)
	}
	if !bytes.Equal(meta.BlockID.Hash, id.Hash) && headerOK {
		k.add(h, "meta", 0, "the block meta says hash %X, the block hashes to %X", meta.BlockID.Hash, id.Hash)
	}
	if signedOK {
		return &signed // the genuine ID: an altered block h is not blamed on block h+1
	}
	return &id
}

// loadBlock reads block h from its parts as BlockStore.LoadBlock does, but
// returns what decodes instead of panicking, and without the block's own
// validation (its data hash against its transactions...), which the
// check does and reports field by field. meta nil: load it.
func (k *blockCheck) loadBlock(h int64, meta *types.BlockMeta) (*types.Block, error) {
	if meta == nil {
		m, err := try(func() *types.BlockMeta { return k.bs.LoadBlockMeta(h) })
		if err != nil || m == nil {
			return nil, fmt.Errorf("block meta %d is missing or does not decode: %v", h, err)
		}
		meta = m
	}
	total := int(meta.BlockID.PartSetHeader.Total)
	var buf []byte
	for i := range total {
		part, err := try(func() *types.Part { return k.bs.LoadBlockPart(h, i) })
		if err != nil {
			return nil, fmt.Errorf("part %d of %d: %v", i, total, err)
		}
		if part == nil {
			return nil, fmt.Errorf("part %d of %d is missing", i, total)
		}
		buf = append(buf, part.Bytes...)
	}
	pb := new(cmtproto.Block)
	if err := proto.Unmarshal(buf, pb); err != nil {
		return nil, fmt.Errorf("the block does not decode: %w", err)
	}
	b, err := types.BlockFromProto(pb)
	if b == nil {
		return nil, fmt.Errorf("the block does not decode: %w", err)
	}
	return b, nil
}

// commit checks the stored commit for height h signature by signature and
// returns the block ID the validators signed, ok if more than 2/3 of the
// voting power signed it validly: in the stored commit or, if that one was
// altered, in block h+1's copy of it (its last commit, which that block's
// last_commit_hash covers).
func (k *blockCheck) commit(h int64, vals *types.ValidatorSet, verr error) (types.BlockID, bool) {
	load := func() *types.Commit { return k.bs.LoadBlockCommit(h) }
	if h == k.rep.Height {
		load = func() *types.Commit { return k.bs.LoadSeenCommit(h) }
	}
	c, err := try(load)
	if err != nil || c == nil {
		k.add(h, "commit", 0, "the commit of height %d is missing or does not decode: %v", h, err)
		return types.BlockID{}, false
	}
	if verr != nil {
		return c.BlockID, false
	}
	if c.Height != h {
		k.add(h, "commit", 0, "the commit stored for height %d is of height %d", h, c.Height)
		return c.BlockID, false
	}
	n := len(k.rep.Findings)
	power := k.signedPower(h, c, vals, true)
	if power*3 > vals.TotalVotingPower()*2 {
		return c.BlockID, true
	}
	if len(k.rep.Findings) == n {
		k.add(h, "commit", 0, "valid signatures hold %d of %d voting power, not more than 2/3", power, vals.TotalVotingPower())
	}
	if h < k.rep.Height {
		if next, err := k.loadBlock(h+1, nil); err == nil && next.LastCommit != nil && next.LastCommit.Height == h {
			if p := k.signedPower(h, next.LastCommit, vals, false); p*3 > vals.TotalVotingPower()*2 {
				return next.LastCommit.BlockID, true
			}
		}
	}
	return c.BlockID, false
}

// signedPower verifies a commit's signatures with the validator set and
// returns the voting power of the valid ones, reporting the others if
// report.
func (k *blockCheck) signedPower(h int64, c *types.Commit, vals *types.ValidatorSet, report bool) int64 {
	var power int64
	for i, s := range c.Signatures {
		if s.BlockIDFlag != types.BlockIDFlagCommit {
			continue
		}
		idx, v := vals.GetByAddress(s.ValidatorAddress)
		if v == nil || int(idx) != i {
			if report {
				k.add(h, "commit_signature", i, "signature %d is by %X, not validator %d of height %d", i, s.ValidatorAddress, i, h)
			}
			continue
		}
		if !v.PubKey.VerifySignature(c.VoteSignBytes(k.rep.ChainID, int32(i)), s.Signature) {
			if report {
				k.add(h, "commit_signature", i, "signature %d (validator %X) does not verify over block %X", i, s.ValidatorAddress, c.BlockID.Hash)
			}
			continue
		}
		power += v.VotingPower
	}
	return power
}

// txs names the transactions of block h that are not the ones committed:
// the header (signed) has another data hash, and the node's transaction
// index (CometBFT's kv indexer: the tx hash is a key) does not know them,
// or knows them at another place.
func (k *blockCheck) txs(h int64, b *types.Block) {
	n := len(k.rep.Findings)
	if k.tx != nil {
		for i, tx := range b.Txs {
			v, err := k.tx.Get(tx.Hash())
			if err != nil || v == nil {
				k.add(h, "tx", i, "transaction %d (hash %X) is not one the block committed: the transaction index does not know it", i, tx.Hash())
			}
		}
	}
	if len(k.rep.Findings) == n {
		k.add(h, "txs", 0, "the transactions hash to %X, the signed header's data hash is %X", b.Data.Hash(), b.DataHash)
	}
}
