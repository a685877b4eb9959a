package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/thingnet/thingnet/ledger"
)

// anchorResubmit is how long an anchor tx may stay uncommitted before the
// gateway sends a new one.
const anchorResubmit = 30 * time.Second

// anchorer anchors the data log's root on the ledger every AnchorInterval
// in which the log grew: one small tx per gateway, whatever the readings.
func (g *Gateway) anchorer(ctx context.Context) {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.AnchorInterval)
	defer t.Stop()
	var pendingNonce uint64
	var pendingSince time.Time
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nonce, err := g.anchorOnce(ctx, pendingNonce, pendingSince)
		if err != nil {
			if err.Error() != lastErr {
				g.log.Warn("anchoring the data log", "err", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		if nonce != 0 {
			pendingNonce, pendingSince = nonce, time.Now()
		}
	}
}

// anchorOnce submits an anchor if the log grew past the last anchored size
// and no anchor of ours is still on its way; it returns the nonce it used.
func (g *Gateway) anchorOnce(ctx context.Context, pendingNonce uint64, pendingSince time.Time) (uint64, error) {
	size, root := g.data.Root()
	if size == 0 {
		return 0, nil
	}
	st, err := g.ledger.View()
	if err != nil {
		return 0, err
	}
	var anchored uint64
	switch a, err := st.Anchor(g.id); {
	case err == nil:
		anchored = a.Size
	case !errors.Is(err, ledger.ErrNotFound):
		return 0, err
	}
	if size <= anchored {
		return 0, nil
	}
	last, err := st.Nonce(g.id)
	if err != nil {
		return 0, err
	}
	if pendingNonce > last && time.Since(pendingSince) < anchorResubmit {
		return 0, nil // the previous anchor is not committed yet
	}
	m := &ledger.DataAnchor{Size: size, Root: root[:]}
	if anchored > 0 {
		p, err := g.data.ConsistencyProof(anchored, size)
		if err != nil {
			return 0, err
		}
		for _, h := range p {
			m.Consistency = append(m.Consistency, h[:])
		}
	}
	tx, err := ledger.NewTx(g.cfg.Key, g.id, g.ledger.ChainID(), last+1, st.Height+20, m)
	if err != nil {
		return 0, err
	}
	if err := g.ledger.Submit(ctx, tx); err != nil {
		return 0, err
	}
	return last + 1, nil
}
