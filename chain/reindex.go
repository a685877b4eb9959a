package chain

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	dbm "github.com/cometbft/cometbft-db"
	abci "github.com/cometbft/cometbft/abci/types"
	cmtcfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/state"
	"github.com/cometbft/cometbft/state/txindex"
	"github.com/cometbft/cometbft/state/txindex/kv"
	"github.com/cometbft/cometbft/store"
	"github.com/cometbft/cometbft/types"

	blockidxkv "github.com/cometbft/cometbft/state/indexer/block/kv"
)

// maxReindex bounds how far below the top indexReplay looks for blocks the
// index missed. A crash loses at most the blocks whose events were still
// queued for the indexer: one or two.
const maxReindex = 1000

// indexReplay indexes the blocks at the top of the block store that the
// transaction and block index missed, and reports how many it indexed.
//
// CometBFT v0.38 indexes a block's events from a goroutine fed by its event
// bus, after the block is committed and its results saved: a node killed
// between the two never indexes that block, since at restart it is not
// executed again. Its transactions are then on the chain but "not found"
// by hash, forever (CometBFT's answer is the offline `reindex-event`
// command). Start runs this first, so a node that crashed answers for every
// transaction it holds.
func indexReplay(cc *cmtcfg.Config, logger *slog.Logger) (int, error) {
	if cc.TxIndex.Indexer != "kv" {
		return 0, nil
	}
	var opened []dbm.DB
	defer func() {
		for _, db := range opened {
			_ = db.Close()
		}
	}()
	open := func(id string) (dbm.DB, error) {
		db, err := cmtcfg.DefaultDBProvider(&cmtcfg.DBContext{ID: id, Config: cc})
		if err != nil {
			return nil, fmt.Errorf("chain: open %s database to check the index: %w", id, err)
		}
		opened = append(opened, db)
		return db, nil
	}
	bdb, err := open("blockstore")
	if err != nil {
		return 0, err
	}
	sdb, err := open("state")
	if err != nil {
		return 0, err
	}
	idb, err := open("tx_index")
	if err != nil {
		return 0, err
	}
	bs := store.NewBlockStore(bdb)
	ss := state.NewStore(sdb, state.StoreOptions{DiscardABCIResponses: cc.Storage.DiscardABCIResponses})
	st, err := ss.Load()
	if err != nil {
		return 0, fmt.Errorf("chain: load state to check the index: %w", err)
	}
	txs := kv.NewTxIndex(idb)
	blocks := blockidxkv.New(dbm.NewPrefixDB(idb, []byte("block_events")))

	// Walk down from the last executed block to the first one fully indexed.
	var missed []int64
	for h := st.LastBlockHeight; h >= max(bs.Base(), 1) && len(missed) < maxReindex; h-- {
		block := bs.LoadBlock(h)
		if block == nil {
			break
		}
		ok, err := indexed(blocks, txs, block)
		if err != nil {
			return 0, err
		}
		if ok {
			break
		}
		missed = append(missed, h)
	}
	slices.Reverse(missed)
	n := 0
	for _, h := range missed {
		res, err := ss.LoadFinalizeBlockResponse(h)
		if err != nil {
			// A height restored by state sync has no saved results.
			logger.Debug("chain: no saved results to index", "height", h, "err", err)
			continue
		}
		if err := indexBlock(blocks, txs, bs.LoadBlock(h), res); err != nil {
			return n, err
		}
		n++
	}
	if n > 0 {
		logger.Info("chain: indexed blocks the index missed before a crash", "blocks", n, "from", missed[0], "to", missed[len(missed)-1])
	}
	return n, nil
}

// indexed reports whether block's events and all its transactions are in the index.
func indexed(blocks *blockidxkv.BlockerIndexer, txs *kv.TxIndex, block *types.Block) (bool, error) {
	ok, err := blocks.Has(block.Height)
	if err != nil || !ok {
		return false, err
	}
	// The indexer writes the block's events before its transactions.
	for _, tx := range block.Txs {
		r, err := txs.Get(tx.Hash())
		if err != nil {
			return false, fmt.Errorf("chain: read the index at height %d: %w", block.Height, err)
		}
		if r == nil {
			return false, nil
		}
	}
	return true, nil
}

// indexBlock indexes block and its results, as CometBFT's indexer service does.
func indexBlock(blocks *blockidxkv.BlockerIndexer, txs *kv.TxIndex, block *types.Block, res *abci.ResponseFinalizeBlock) error {
	if block == nil {
		return errors.New("chain: a block vanished from the block store while indexing")
	}
	if len(res.TxResults) != len(block.Txs) {
		return fmt.Errorf("chain: height %d has %d transactions but %d saved results", block.Height, len(block.Txs), len(res.TxResults))
	}
	batch := txindex.NewBatch(int64(len(block.Txs)))
	for i, r := range res.TxResults {
		if err := batch.Add(&abci.TxResult{Height: block.Height, Index: uint32(i), Tx: block.Txs[i], Result: *r}); err != nil {
			return fmt.Errorf("chain: index transaction %d at height %d: %w", i, block.Height, err)
		}
	}
	if err := blocks.Index(types.EventDataNewBlockEvents{Height: block.Height, Events: res.Events, NumTxs: int64(len(block.Txs))}); err != nil {
		return fmt.Errorf("chain: index block events at height %d: %w", block.Height, err)
	}
	if err := txs.AddBatch(batch); err != nil {
		return fmt.Errorf("chain: index transactions at height %d: %w", block.Height, err)
	}
	return nil
}
