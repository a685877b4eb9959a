package chain

import (
	"errors"
	"fmt"
	"sync"

	dbm "github.com/cometbft/cometbft-db"
	cmtcfg "github.com/cometbft/cometbft/config"
)

// dbSet opens a node's databases and remembers them, so that all of them are closed
// when the node stops: CometBFT v0.38 leaves the transaction index open, and everything
// open when NewNode fails.
type dbSet struct {
	mu  sync.Mutex
	dbs []*guardedDB
}

func (s *dbSet) provider(ctx *cmtcfg.DBContext) (dbm.DB, error) {
	db, err := cmtcfg.DefaultDBProvider(ctx)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", ctx.ID, err)
	}
	d := &guardedDB{db: db, id: ctx.ID}
	s.mu.Lock()
	s.dbs = append(s.dbs, d)
	s.mu.Unlock()
	return d, nil
}

func (s *dbSet) closeAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, d := range s.dbs {
		if err := d.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s database: %w", d.id, err))
		}
	}
	return errors.Join(errs...)
}

// guardedDB makes a closed database behave like that of a process that has crashed:
// reads find nothing and writes are lost, instead of failing.
//
// CometBFT closes its stores while some per-peer goroutines (consensus gossip and
// queryMaj23 routines, block sync) are still finishing a sleep; when they wake they
// read the block store, get "leveldb: closed" and panic, taking the whole process
// down (cometbft/cometbft, tendermint/tendermint: "panic: leveldb: closed" in
// queryMaj23Routine on stop). CometBFT recovers from a crash at any point, so a store
// that acts crashed after Close is safe; a store that panics is not acceptable in an
// embedding process. Close waits for the operations in flight and closes once.
type guardedDB struct {
	id string

	mu       sync.RWMutex
	db       dbm.DB
	closed   bool
	closeErr error
}

func (d *guardedDB) Get(key []byte) ([]byte, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return nil, nil
	}
	return d.db.Get(key)
}

func (d *guardedDB) Has(key []byte) (bool, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return false, nil
	}
	return d.db.Has(key)
}

func (d *guardedDB) Set(key, value []byte) error {
	return d.write(func(db dbm.DB) error { return db.Set(key, value) })
}

func (d *guardedDB) SetSync(key, value []byte) error {
	return d.write(func(db dbm.DB) error { return db.SetSync(key, value) })
}

func (d *guardedDB) Delete(key []byte) error {
	return d.write(func(db dbm.DB) error { return db.Delete(key) })
}

func (d *guardedDB) DeleteSync(key []byte) error {
	return d.write(func(db dbm.DB) error { return db.DeleteSync(key) })
}

func (d *guardedDB) Compact(start, end []byte) error {
	return d.write(func(db dbm.DB) error { return db.Compact(start, end) })
}

func (d *guardedDB) Print() error {
	return d.write(func(db dbm.DB) error { return db.Print() })
}

// write runs f on the open database, or does nothing once it is closed.
func (d *guardedDB) write(f func(dbm.DB) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return nil
	}
	return f(d.db)
}

func (d *guardedDB) Iterator(start, end []byte) (dbm.Iterator, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return dbm.NewMemDB().Iterator(start, end)
	}
	return d.db.Iterator(start, end)
}

func (d *guardedDB) ReverseIterator(start, end []byte) (dbm.Iterator, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return dbm.NewMemDB().ReverseIterator(start, end)
	}
	return d.db.ReverseIterator(start, end)
}

func (d *guardedDB) NewBatch() dbm.Batch {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return &guardedBatch{Batch: dbm.NewMemDB().NewBatch(), db: d}
	}
	return &guardedBatch{Batch: d.db.NewBatch(), db: d}
}

func (d *guardedDB) Stats() map[string]string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return map[string]string{}
	}
	return d.db.Stats()
}

func (d *guardedDB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		d.closeErr = d.db.Close()
	}
	return d.closeErr
}

// guardedBatch drops its writes once its database is closed.
type guardedBatch struct {
	dbm.Batch
	db *guardedDB
}

func (b *guardedBatch) Write() error {
	return b.db.write(func(dbm.DB) error { return b.Batch.Write() })
}

func (b *guardedBatch) WriteSync() error {
	return b.db.write(func(dbm.DB) error { return b.Batch.WriteSync() })
}
