package files

import (
	"bytes"
	"context"
	"errors"
	"io"
)

// ErrTooLarge is returned by a Capped buffer written past its limit.
var ErrTooLarge = errors.New("files: the file is larger than expected")

// Capped collects what is written to it, up to Max bytes: one more is
// ErrTooLarge. For fetching a file whose size a record states (a log
// archive segment), so that a provider cannot make it grow.
type Capped struct {
	Max uint64
	buf bytes.Buffer
}

func (w *Capped) Write(p []byte) (int, error) {
	if uint64(w.buf.Len())+uint64(len(p)) > w.Max {
		return 0, ErrTooLarge
	}
	return w.buf.Write(p)
}

// Bytes is what was written.
func (w *Capped) Bytes() []byte { return w.buf.Bytes() }

// Fetch downloads file cid of at most max bytes (GET /v1/content/{cid}).
func (c *Client) Fetch(ctx context.Context, cid string, max uint64) ([]byte, error) {
	w := &Capped{Max: max}
	if _, err := c.Get(ctx, cid, w, nil); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}

var _ io.Writer = (*Capped)(nil)
