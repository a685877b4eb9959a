package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/rules"
)

// rulesBuffer is how many stored readings may wait for the rules engine
// before it loses some (counted by the gateway's feed).
const rulesBuffer = 8192

// startRules runs the [[rules]] of c on every numeric reading the gateway
// stores: the gateway's stored-reading feed (Gateway.FollowStored) carries
// the values, which the events bus does not. The device's organisation,
// class and labels come from the ledger's latest state.
func (n *Node) startRules(c Config, key *identity.Key) error {
	if len(c.Rules) == 0 {
		return nil
	}
	log := n.log.With("module", "rules")
	n.rulesOut = rules.NewDispatcher(rules.DispatcherConfig{Rules: c.Rules, Key: key, Logger: log, Alert: n.ruleAlert(key)})
	eng, err := rules.NewEngine(rules.Config{Rules: c.Rules, Fire: n.rulesOut.Fire, Logger: log})
	if err != nil {
		n.rulesOut.Close()
		n.rulesOut = nil
		return err
	}
	n.rules = eng
	var height int64
	devs := map[string]rules.Device{} // of the ledger state at height
	n.stopRules, n.rulesSkipped = n.gw.FollowStored(rulesBuffer, func(it client.ReadingItem) {
		if it.Value == nil {
			return // bytes and sealed values are not numbers a rule can read
		}
		st, err := n.app.View(0)
		if err != nil {
			return
		}
		if st.Height != height {
			height, devs = st.Height, map[string]rules.Device{}
		}
		d, ok := devs[it.Device]
		if !ok {
			rec, err := st.Device(it.Device)
			if err != nil {
				return
			}
			d = rules.Device{ID: rec.ID, Org: rec.Org, Class: rec.Class, Labels: rec.Labels}
			devs[it.Device] = d
		}
		eng.Observe(d, it.ContentType, it.Seq, it.Time, *it.Value)
	})
	log.Info("rules running", "rules", len(c.Rules))
	return nil
}

// stopRulesEngine stops following readings and delivering actions.
func (n *Node) stopRulesEngine() {
	if n.stopRules != nil {
		n.stopRules()
	}
	if n.rulesOut != nil {
		n.rulesOut.Close()
	}
}

// ruleFirings serves GET /v1/rules/firings?device=DID: the recent firings
// this node's rules made for the device (kept in memory, the last 1,024 of
// all devices), to whom may read the device's readings (the gateway's read
// rule, as for the readings themselves).
func (n *Node) ruleFirings(r *http.Request) (any, error) {
	device := r.URL.Query().Get("device")
	if _, err := n.gw.MayRead(r, device); err != nil {
		return nil, err
	}
	firings := []rules.Firing{}
	if n.rulesOut != nil { // a node without [[rules]]: none
		firings = n.rulesOut.History(device)
	}
	return map[string]any{"device": device, "firings": firings}, nil
}

// ruleAlert stores a firing as an alert record: a reading of the gateway
// itself (content type rules.AlertType, the firing as JSON), signed with
// its key and stored in its data log like any reading, so that the log's
// anchor on the ledger covers it. Only for a rule of the gateway's own
// organisation: the gateway's readings are readable by its organisation,
// and an alert names the device and its value.
func (n *Node) ruleAlert(key *identity.Key) func(context.Context, rules.Firing) error {
	var last uint64 // the alert's seq: microseconds, strictly increasing
	return func(ctx context.Context, f rules.Firing) error {
		st, err := n.app.View(0)
		if err != nil {
			return err
		}
		gw, err := st.Device(key.ID())
		if err != nil {
			return fmt.Errorf("the gateway %s: %w", key.ID(), err)
		}
		if gw.Org != f.Org {
			return fmt.Errorf("rule %q is of organisation %s, the gateway of %s: its alerts would be readable by %s (use a webhook)", f.Rule, f.Org, gw.Org, gw.Org)
		}
		body, err := json.Marshal(f)
		if err != nil {
			return err
		}
		now := time.Now()
		last = max(last+1, uint64(now.UnixMicro()))
		raw, err := reading.Sign(key, key.ID(), reading.Reading{Seq: last, Time: now, ContentType: rules.AlertType, Bytes: body})
		if err != nil {
			return err
		}
		_, err = n.gw.IngestIndex(ctx, key.ID(), raw, "rules")
		return err
	}
}
