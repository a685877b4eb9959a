package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/thingnet/thingnet/ledger"
)

// txResubmit is how long a gateway tx may stay uncommitted before the
// gateway sends another.
const txResubmit = 30 * time.Second

// duties runs the gateway's ledger work every AnchorInterval, one tx at a
// time (they share the gateway key's nonce): quarantining devices that keep
// exceeding their limits, where an organisation's policy allows it, and
// anchoring the data log when it grew.
func (g *Gateway) duties(ctx context.Context) {
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
		nonce, err := g.dutyOnce(ctx, pendingNonce, pendingSince)
		if errors.Is(err, ledger.ErrNoState) {
			continue // the node is starting: no block committed yet
		}
		if err != nil {
			if err.Error() != lastErr {
				g.log.Warn("gateway ledger duty", "err", err)
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

// dutyOnce submits at most one tx; it returns the nonce it used (0: none).
func (g *Gateway) dutyOnce(ctx context.Context, pendingNonce uint64, pendingSince time.Time) (uint64, error) {
	st, err := g.ledger.View()
	if err != nil {
		return 0, err
	}
	last, err := st.Nonce(g.id)
	if err != nil {
		return 0, err
	}
	if pendingNonce > last && time.Since(pendingSince) < txResubmit {
		return 0, nil // our previous tx is not committed yet
	}
	m, err := g.quarantineMsg(st)
	if err != nil {
		return 0, err
	}
	if m == nil {
		if m, err = g.anchorMsg(st); err != nil || m == nil {
			return 0, err
		}
	}
	tx, err := ledger.NewTx(g.cfg.Key, g.id, g.ledger.ChainID(), last+1, st.Height+20, m)
	if err != nil {
		return 0, err
	}
	if err := g.ledger.Submit(ctx, tx); err != nil {
		return 0, fmt.Errorf("%s: %w", m.Kind(), err)
	}
	return last + 1, nil
}

// anchorMsg is the anchor of the log's current size, if it grew past the
// last anchored size.
func (g *Gateway) anchorMsg(st *ledger.State) (ledger.Msg, error) {
	size, root := g.data.Root()
	if size == 0 {
		return nil, nil
	}
	var anchored uint64
	switch a, err := st.Anchor(g.id); {
	case err == nil:
		anchored = a.Size
	case !errors.Is(err, ledger.ErrNotFound):
		return nil, err
	}
	if size <= anchored {
		return nil, nil
	}
	m := &ledger.DataAnchor{Size: size, Root: root[:]}
	if anchored > 0 {
		p, err := g.data.ConsistencyProof(anchored, size)
		if err != nil {
			return nil, err
		}
		for _, h := range p {
			m.Consistency = append(m.Consistency, h[:])
		}
	}
	return m, nil
}

// Quarantine policy: a device refused this many times within this window
// is an offender.
const (
	OffenderThreshold = 20
	OffenderWindow    = time.Minute
)

// quarantineMsg picks an offending device to suspend: one still active,
// whose organisation has granted this gateway "manage" on it (its policy:
// "let our gateways quarantine our devices"). Offenders without such a
// policy are only reported (logged and counted); they stay candidates for
// OffenderWindow, in case the policy arrives meanwhile.
func (g *Gateway) quarantineMsg(st *ledger.State) (ledger.Msg, error) {
	for _, o := range g.limiter.Offenders(OffenderThreshold, OffenderWindow) {
		id, ok := strings.CutPrefix(o.Key, "dev:")
		if !ok {
			id, ok = strings.CutPrefix(o.Key, "device:") // the MQTT broker's keys
		}
		if !ok {
			continue // a source address: refused at the edge, nothing on chain to do
		}
		g.log.Warn("device keeps exceeding its limits", "device", id, "violations", o.Violations, "since", o.Since)
		g.stats.offenders.Add(1)
		g.offMu.Lock()
		if len(g.offenders) >= g.cfg.MaxKeys {
			clear(g.offenders)
		}
		g.offenders[id] = offender{violations: o.Violations, reported: g.clock.Now()}
		g.offMu.Unlock()
	}
	g.offMu.Lock()
	defer g.offMu.Unlock()
	now := g.clock.Now()
	for id, o := range g.offenders {
		if now.Sub(o.reported) >= OffenderWindow {
			delete(g.offenders, id)
			continue
		}
		d, err := st.Device(id)
		if err != nil || d.Status != ledger.StatusActive {
			delete(g.offenders, id)
			continue
		}
		allowed, err := st.HasGrant("device:"+g.id, ledger.ActionManage, []string{"device:" + id, "org:" + d.Org}, st.Height+1)
		if err != nil {
			return nil, err
		}
		if allowed {
			delete(g.offenders, id) // one try; it is reported again if it goes on
			return ledger.NewDeviceStatus(id, ledger.StatusSuspended,
				fmt.Sprintf("quarantined by gateway %s: %d limit violations within %v", g.id, o.violations, OffenderWindow)), nil
		}
	}
	return nil, nil
}

// offender is a device reported for exceeding its limits.
type offender struct {
	violations int
	reported   time.Time
}
