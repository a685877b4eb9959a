package files

import (
	"context"
	"errors"
	"sync"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// ErrClosed is what the block store answers once its service is closed.
var ErrClosed = errors.New("files: the file service is closed")

// closingDS is the service's datastore, which answers ErrClosed once
// closed instead of reaching the closed Pebble store (whose every method
// panics after Close): a caller still holding the service, say an
// archiver unpinning as the node stops, gets an error, not a crashed
// process. Close waits for the calls in flight.
type closingDS struct {
	ds ds.Batching

	mu       sync.Mutex
	closed   bool
	inFlight sync.WaitGroup
}

var _ ds.Batching = (*closingDS)(nil)

// enter counts a call in flight, or reports that the store is closed.
func (c *closingDS) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.inFlight.Add(1)
	return true
}

func (c *closingDS) Get(ctx context.Context, k ds.Key) ([]byte, error) {
	if !c.enter() {
		return nil, ErrClosed
	}
	defer c.inFlight.Done()
	return c.ds.Get(ctx, k)
}

func (c *closingDS) Has(ctx context.Context, k ds.Key) (bool, error) {
	if !c.enter() {
		return false, ErrClosed
	}
	defer c.inFlight.Done()
	return c.ds.Has(ctx, k)
}

func (c *closingDS) GetSize(ctx context.Context, k ds.Key) (int, error) {
	if !c.enter() {
		return -1, ErrClosed
	}
	defer c.inFlight.Done()
	return c.ds.GetSize(ctx, k)
}

// Query starts a query while the store is open; its results are read
// after the call, and the Pebble datastore ends them with an error of its
// own when it closes.
func (c *closingDS) Query(ctx context.Context, q query.Query) (query.Results, error) {
	if !c.enter() {
		return nil, ErrClosed
	}
	defer c.inFlight.Done()
	return c.ds.Query(ctx, q)
}

func (c *closingDS) Put(ctx context.Context, k ds.Key, v []byte) error {
	if !c.enter() {
		return ErrClosed
	}
	defer c.inFlight.Done()
	return c.ds.Put(ctx, k, v)
}

func (c *closingDS) Delete(ctx context.Context, k ds.Key) error {
	if !c.enter() {
		return ErrClosed
	}
	defer c.inFlight.Done()
	return c.ds.Delete(ctx, k)
}

func (c *closingDS) Sync(ctx context.Context, prefix ds.Key) error {
	if !c.enter() {
		return ErrClosed
	}
	defer c.inFlight.Done()
	return c.ds.Sync(ctx, prefix)
}

func (c *closingDS) Batch(ctx context.Context) (ds.Batch, error) {
	if !c.enter() {
		return nil, ErrClosed
	}
	defer c.inFlight.Done()
	b, err := c.ds.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return closingBatch{b, c}, nil
}

// Close closes the datastore once the calls in flight have returned.
func (c *closingDS) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.inFlight.Wait()
	return c.ds.Close()
}

// closingBatch commits only while its datastore is open.
type closingBatch struct {
	ds.Batch
	c *closingDS
}

func (b closingBatch) Commit(ctx context.Context) error {
	if !b.c.enter() {
		return ErrClosed
	}
	defer b.c.inFlight.Done()
	return b.Batch.Commit(ctx)
}
