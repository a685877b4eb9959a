package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
	"github.com/thingnet/thingnet/rules"
)

// rulesBuffer is how many stored readings may wait for the rules engine
// before it loses some (counted by the gateway's feed).
const rulesBuffer = 8192

// startRules runs the rules of c ([[rules]] in thingnet.toml) and of the
// node's rules store (<home>/rules.d, `thingnet rules add`) on every
// numeric reading the gateway stores, and its fleet rules on the fleet
// census: the gateway's stored-reading feed (Gateway.FollowStored)
// carries the values, which the events bus does not; the same feed keeps
// the fleet tracker. The device's organisation, class and labels come
// from the ledger's latest state. The engine runs even without rules, so
// that a rule added later takes effect at once; its states and windows are
// saved in <home>/data/rules/state.json every 30 s and at stop, and
// restored at start, with what the rules' outboxes fired since the save.
func (n *Node) startRules(c Config, key *identity.Key) error {
	log := n.log.With("module", "rules")
	n.rulesStore = rules.Store{Dir: filepath.Join(n.home, rules.StoreDir)}
	stored, err := n.rulesStore.List(rules.DefaultLimits())
	if err != nil {
		return err
	}
	n.rulesConf = c.Rules
	all := append(slices.Clone(c.Rules), stored...)
	n.rulesOut = rules.NewDispatcher(rules.DispatcherConfig{Rules: all, Key: key, Logger: log, Alert: n.ruleAlert(key),
		Call: n.ruleCall, Command: n.ruleCommand, StateDir: RulesWebhooksDir(n.home)})
	eng, err := rules.NewEngine(rules.Config{Rules: all, Fire: n.rulesOut.Fire, Logger: log})
	if err != nil {
		n.rulesOut.Close()
		n.rulesOut = nil
		return fmt.Errorf("%w (rules of thingnet.toml and %s together)", err, n.rulesStore.Dir)
	}
	n.rules = eng
	n.rulesState = filepath.Join(n.home, "data", "rules", "state.json")
	if err := eng.LoadState(n.rulesState); err != nil {
		log.Warn("rules state not restored: windows and states start empty", "err", err)
	}
	// The state is saved every 30 s: the outboxes know what fired since.
	eng.Fired(n.rulesOut.FiredAtStart())
	n.startFleet(c)
	var height int64
	devs := map[string]rules.Device{} // of the ledger state at height
	n.stopRules, n.rulesSkipped = n.gw.FollowStored(rulesBuffer, func(it client.ReadingItem) {
		n.fleet.Observe(it)
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
	every := c.Fleet.Every.Duration
	if every <= 0 {
		every = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // every [fleet] every, the fleet rules; every 30 s, the state saved
		defer close(done)
		census, save := time.NewTicker(every), time.NewTicker(rulesSaveEvery)
		defer census.Stop()
		defer save.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-census.C:
				n.fleetRules()
			case <-save.C:
				n.saveRulesState()
			}
		}
	}()
	n.stopRuleLoops = func() { cancel(); <-done }
	log.Info("rules running", "rules", len(all), "added", len(stored))
	return nil
}

// RulesWebhooksDir is where a node's rules keep their webhooks' dead
// letters (rules.WebhookDir of each rule under it).
func RulesWebhooksDir(home string) string { return filepath.Join(home, "data", "rules", "webhooks") }

// rulesSaveEvery is how often the rules engine's state is saved: a crash
// loses at most this much of it (a clean stop saves it all).
const rulesSaveEvery = 30 * time.Second

// saveRulesState saves the rules engine's state, then lets the rules'
// outboxes drop the firings carried out that the saved state holds.
func (n *Node) saveRulesState() {
	m := n.rulesOut.Mark()
	if err := n.rules.SaveState(n.rulesState); err != nil {
		n.log.Warn("saving the rules state", "err", err)
		return
	}
	if err := n.rulesOut.StateSaved(m); err != nil {
		n.log.Warn("compacting the rules' outboxes", "err", err)
	}
}

// stopRulesEngine stops following readings and delivering actions, and
// saves the engine's state.
func (n *Node) stopRulesEngine() {
	if n.stopRules != nil {
		n.stopRules()
	}
	if n.stopRuleLoops != nil {
		n.stopRuleLoops()
	}
	if n.rules != nil {
		n.saveRulesState()
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
	if n.rulesOut != nil { // a node without a gateway: none
		firings = n.rulesOut.History(device)
	}
	return map[string]any{"device": device, "firings": firings}, nil
}

// ruleCall makes a firing's agreement call: a tx signed by the gateway
// key, sent through the gateway's tx queue; it returns once the tx is
// committed (its result, refused or done, is in the agreement's history)
// or dropped.
func (n *Node) ruleCall(ctx context.Context, f rules.Firing, c rules.Call) error {
	return n.gatewayTx(ctx, &record.AgreementCall{ID: c.Agreement, Transition: c.Transition, Args: c.Args})
}

// gatewayTx sends m, signed by the gateway key, through the gateway's tx
// queue and waits until it is committed or dropped.
func (n *Node) gatewayTx(ctx context.Context, m record.Msg) error {
	done := make(chan error, 1)
	if err := n.gw.Enqueue(m, func(err error) { done <- err }); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ruleCommand sends a firing's command to its device: a job of that one
// device, created by a tx signed by the gateway key (which needs a "manage"
// grant on the rule's organisation), sent through the gateway's tx queue;
// it returns once the tx is committed or dropped.
func (n *Node) ruleCommand(ctx context.Context, f rules.Firing, c rules.Command) error {
	return n.gatewayTx(ctx, c.Job(f.Org, f.Device))
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

// mountRules adds the rules routes: GET /v1/rules/firings (under the read
// rule) and, for the node's operators, GET /v1/rules, POST /v1/rules and
// DELETE /v1/rules/{name} (docs/api.md, "Rules").
func (n *Node) mountRules() {
	n.api.Mount(map[string]api.HandlerFunc{
		"GET /v1/rules/firings":   n.ruleFirings,
		"GET /v1/rules":           n.listRules,
		"POST /v1/rules":          n.addRules,
		"DELETE /v1/rules/{name}": n.removeRule,
	})
}

// operator authenticates r's caller (api.Caller, a bearer token) as an
// operator of this node: an admin, on the ledger, of the organisation of
// its gateway key's device record. Anonymous: 401; another caller: 403.
func (n *Node) operator(r *http.Request) (string, *ledger.State, error) {
	caller, st, err := n.api.Caller(r)
	if err != nil {
		return "", nil, err
	}
	gw, err := st.Device(n.gwKey.ID())
	if err != nil {
		return "", nil, fmt.Errorf("the gateway %s: %w", n.gwKey.ID(), err)
	}
	if caller == "" {
		return "", nil, api.NewError(http.StatusUnauthorized, "unauthenticated",
			fmt.Sprintf("the node's rules are for its operators: authenticate (Authorization: Bearer <token>, thingnet token --key KEY) as an admin of %s, the organisation of its gateway", gw.Org))
	}
	o, err := st.Org(gw.Org)
	if err != nil {
		return "", nil, err
	}
	if !o.IsAdmin(caller) {
		return "", nil, api.NewError(http.StatusForbidden, "forbidden",
			fmt.Sprintf("%s is not an admin of %s, the organisation of this node's gateway: only its operators may see or change its rules", caller, gw.Org))
	}
	return caller, st, nil
}

// ruleEntry is a rule as GET /v1/rules lists it.
type ruleEntry struct {
	rules.Rule
	Source string `json:"source"` // "thingnet.toml" or "rules.d"
}

// listRules serves GET /v1/rules: the rules the node runs, to its operators.
func (n *Node) listRules(r *http.Request) (any, error) {
	if _, _, err := n.operator(r); err != nil {
		return nil, err
	}
	n.rulesMu.Lock()
	defer n.rulesMu.Unlock()
	conf := map[string]bool{}
	for _, c := range n.rulesConf {
		conf[c.Name] = true
	}
	out := []ruleEntry{}
	for _, rl := range n.rules.Rules() {
		src := rules.StoreDir
		if conf[rl.Name] {
			src = ConfigFile
		}
		out = append(out, ruleEntry{Rule: rl, Source: src})
	}
	return map[string]any{"rules": out}, nil
}

// maxRulesBody bounds a POST /v1/rules body.
const maxRulesBody = 64 << 10

// addRules serves POST /v1/rules: {"rules": [rule, ...]} (JSON, the
// fields of a [[rules]] table) whose rules the node adds to those it runs, at once and across restarts
// (its rules store), replacing added rules of the same names. The caller
// must be an operator of the node and an admin of each rule's
// organisation; a rule of thingnet.toml cannot be replaced here. All or
// nothing: one bad rule and none is added.
func (n *Node) addRules(r *http.Request) (any, error) {
	caller, st, err := n.operator(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRulesBody+1))
	if err != nil {
		return nil, api.NewError(http.StatusBadRequest, "bad_request", err.Error())
	}
	if len(body) > maxRulesBody {
		return nil, api.NewError(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a rules body is at most %d bytes", maxRulesBody))
	}
	add, err := rules.DecodeJSON(body, rules.DefaultLimits())
	if err != nil {
		return nil, api.NewError(http.StatusBadRequest, "bad_rule", err.Error())
	}
	if len(add) == 0 {
		return nil, api.NewError(http.StatusBadRequest, "bad_rule", "the body holds no rule")
	}
	for _, rl := range add {
		o, err := st.Org(rl.Org)
		if err != nil || !o.IsAdmin(caller) {
			return nil, api.NewError(http.StatusForbidden, "forbidden", fmt.Sprintf("rule %q watches the devices of %s: %s is not an admin of it", rl.Name, rl.Org, caller))
		}
	}
	n.rulesMu.Lock()
	defer n.rulesMu.Unlock()
	all := slices.Clone(n.rulesConf)
	for _, rl := range add {
		if slices.ContainsFunc(n.rulesConf, func(c rules.Rule) bool { return c.Name == rl.Name }) {
			return nil, api.NewError(http.StatusConflict, "conflict", fmt.Sprintf("rule %q is defined in the node's %s: change it there", rl.Name, ConfigFile))
		}
	}
	for _, rl := range n.rules.Rules()[len(n.rulesConf):] {
		if !slices.ContainsFunc(add, func(a rules.Rule) bool { return a.Name == rl.Name }) {
			all = append(all, rl)
		}
	}
	all = append(all, add...)
	if err := rules.CheckAll(all, rules.DefaultLimits()); err != nil {
		return nil, api.NewError(http.StatusBadRequest, "bad_rule", err.Error())
	}
	for _, rl := range add {
		if err := n.rulesStore.Put(rl, rules.DefaultLimits()); err != nil {
			return nil, err
		}
	}
	if err := n.setRules(all); err != nil {
		return nil, err
	}
	names := make([]string, len(add))
	for i, rl := range add {
		names[i] = rl.Name
	}
	n.log.Info("rules added", "rules", names, "by", caller)
	return api.WithStatus(http.StatusCreated, map[string]any{"added": names, "rules": len(all)}), nil
}

// removeRule serves DELETE /v1/rules/{name}: the node stops running an
// added rule and forgets it. Its caller must be an operator of the node
// and an admin of the rule's organisation.
func (n *Node) removeRule(r *http.Request) (any, error) {
	caller, st, err := n.operator(r)
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	n.rulesMu.Lock()
	defer n.rulesMu.Unlock()
	if slices.ContainsFunc(n.rulesConf, func(c rules.Rule) bool { return c.Name == name }) {
		return nil, api.NewError(http.StatusConflict, "conflict", fmt.Sprintf("rule %q is defined in the node's %s: remove it there", name, ConfigFile))
	}
	cur := n.rules.Rules()
	i := slices.IndexFunc(cur, func(c rules.Rule) bool { return c.Name == name })
	if i < 0 {
		return nil, api.NewError(http.StatusNotFound, "not_found", fmt.Sprintf("no rule %q on this node (thingnet rules list --node)", name))
	}
	if o, err := st.Org(cur[i].Org); err != nil || !o.IsAdmin(caller) {
		return nil, api.NewError(http.StatusForbidden, "forbidden", fmt.Sprintf("rule %q watches the devices of %s: %s is not an admin of it", name, cur[i].Org, caller))
	}
	if err := n.rulesStore.Remove(name); err != nil && !errors.Is(err, rules.ErrNoRule) {
		return nil, err
	}
	if err := n.setRules(slices.Delete(cur, i, i+1)); err != nil {
		return nil, err
	}
	n.log.Info("rule removed", "rule", name, "by", caller)
	return map[string]any{"removed": name}, nil
}

// setRules makes rs the rules the engine evaluates and the dispatcher
// acts for. Called with n.rulesMu held.
func (n *Node) setRules(rs []rules.Rule) error {
	if err := n.rules.SetRules(rs); err != nil {
		return err
	}
	n.rulesOut.SetRules(rs)
	return nil
}
