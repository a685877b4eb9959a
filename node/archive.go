package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/gateway"
)

// segmentStore is the gateway's archive segments over the node's file
// service: published as files (pinned here, the pin on the ledger),
// fetched from whichever nodes pin them.
type segmentStore struct{ fs *files.Service }

var _ gateway.SegmentStore = segmentStore{}

func (s segmentStore) Publish(ctx context.Context, b []byte) (string, error) {
	a, err := s.fs.Add(ctx, bytes.NewReader(b), nil)
	if err != nil {
		return "", err
	}
	return a.CID.String(), nil
}

func (s segmentStore) Fetch(ctx context.Context, c string, max uint64) ([]byte, error) {
	root, err := cid.Decode(c)
	if err != nil {
		return nil, fmt.Errorf("segment cid %q: %w", c, err)
	}
	w := &files.Capped{Max: max}
	if _, err := s.fs.Get(ctx, root, w, files.GetOptions{}); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}

func (s segmentStore) Pin(ctx context.Context, c string) error {
	root, err := cid.Decode(c)
	if err != nil {
		return fmt.Errorf("segment cid %q: %w", c, err)
	}
	return s.fs.Pin(ctx, root)
}

func (s segmentStore) Unpin(ctx context.Context, c string) error {
	root, err := cid.Decode(c)
	if err != nil {
		return fmt.Errorf("segment cid %q: %w", c, err)
	}
	if err := s.fs.Unpin(ctx, root); err != nil && !errors.Is(err, files.ErrNotPinned) {
		return err
	}
	return nil
}
