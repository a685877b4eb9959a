package rules

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thingnet/thingnet/export/webhook"
	"github.com/thingnet/thingnet/identity"
)

// Delivery is the body of a webhook POST.
type Delivery struct {
	Firing
	Node string `json:"node"` // the gateway that evaluated the rule
}

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	Rules  []Rule
	Key    *identity.Key // signs webhook deliveries: the node's gateway key
	Client *http.Client  // default: a client with no timeout of its own (each attempt has the action's)
	// StateDir holds each webhook rule's dead letters, in
	// <StateDir>/<hex of the rule's name>/dead-letters (export/webhook's
	// list). Required for rules with a webhook.
	StateDir string
	// QueueLen bounds the firings of a rule waiting for its actions; past
	// it a firing's actions are dropped (and counted). Default 1024.
	QueueLen int
	// HistoryLen is how many recent firings History keeps (all devices
	// together, in memory); default 1024.
	HistoryLen int
	// Alert stores a firing as an alert record, for rules whose action
	// asks for one (the node: a reading of its gateway, in its log).
	Alert func(context.Context, Firing) error
	// Call makes an agreement call for rules whose action has one (the
	// node: a tx signed by its gateway key, returning once committed).
	Call func(context.Context, Firing, Call) error
	// Command sends a command to a firing's device, for rules whose action
	// has one (the node: a one-device job created by a tx signed by its
	// gateway key, returning once committed).
	Command func(context.Context, Firing, Command) error
	Logger  *slog.Logger
}

// Dispatcher carries out the actions of firings: a log line and a counter
// for each, and, per rule, its alert record and its webhook, delivered by
// the rule's own worker through export/webhook's Deliverer (the one
// implementation of signed deliveries: a timeout per attempt, bounded
// retries with back-off, the rule's rate limit, dead letters), so that a
// slow endpoint holds back neither the readings' path nor other rules.
type Dispatcher struct {
	cfg     DispatcherConfig
	mu      sync.Mutex
	workers map[string]*worker // by rule name, for rules with an alert or a webhook
	closed  bool
	// lastFired: the outboxes' last firing of each subject, until
	// FiredAtStart takes them (firedTaken); a rule changed later starts
	// with its states forgotten, so its outbox's firings are not kept.
	lastFired  []Firing
	firedTaken bool

	histMu  sync.Mutex
	history []Firing // ring of the last HistoryLen firings, oldest at histAt once full
	histAt  int

	fired, delivered, retried, failed, dropped atomic.Uint64
	alerts, alertsFailed                       atomic.Uint64
	calls, callsFailed                         atomic.Uint64
	commands, commandsFailed                   atomic.Uint64
	perRule                                    sync.Map // rule name -> *atomic.Uint64
}

// worker carries out one rule's actions, in firing order.
type worker struct {
	rule   Rule
	q      chan Firing
	hook   *webhook.Deliverer // nil without a webhook
	out    *outbox            // nil without a state directory
	cancel context.CancelFunc
	done   chan struct{}
}

// NewDispatcher starts a dispatcher; Close stops its workers.
func NewDispatcher(c DispatcherConfig) *Dispatcher {
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HistoryLen <= 0 {
		c.HistoryLen = 1024
	}
	d := &Dispatcher{cfg: c, workers: map[string]*worker{}}
	d.SetRules(c.Rules)
	return d
}

// SetRules replaces the rules whose actions the dispatcher carries out
// (with Engine.SetRules): a rule whose action is unchanged keeps its
// worker and queue; a changed rule's worker stops and the new one carries
// out what the old one had not (the rule's outbox); a removed rule's
// worker stops, and what it had queued is abandoned (its outbox removed).
func (d *Dispatcher) SetRules(rs []Rule) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	keep := map[string]bool{}
	for _, r := range rs {
		if r.Action.Webhook == "" && !r.Action.Alert && r.Action.Call == nil && r.Action.Command == nil {
			continue
		}
		keep[r.Name] = true
		if w := d.workers[r.Name]; w != nil {
			if reflect.DeepEqual(w.rule.Action, r.Action) && w.rule.Org == r.Org {
				continue
			}
			w.stop()
		}
		d.workers[r.Name] = d.start(r)
	}
	for name, w := range d.workers {
		if !keep[name] {
			w.stop()
			delete(d.workers, name)
			if dir := d.stateDir(name); dir != "" {
				if err := os.Remove(filepath.Join(dir, OutboxFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					d.cfg.Logger.Warn("removing a removed rule's outbox", "rule", name, "err", err)
				}
			}
		}
	}
}

// start starts rule r's worker. Called with d.mu held.
func (d *Dispatcher) start(r Rule) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{rule: r, q: make(chan Firing, d.cfg.QueueLen), cancel: cancel, done: make(chan struct{})}
	if a := r.Action; a.Webhook != "" {
		timeout, retries, rps := a.Timeout.Duration, a.Retries, a.Rate
		if timeout == 0 {
			timeout = 5 * time.Second
		}
		if retries == 0 {
			retries = 3
		}
		if rps == 0 {
			rps = 10
		}
		hook, err := webhook.NewDeliverer(webhook.Config{URL: a.Webhook, StateDir: d.stateDir(r.Name), Key: d.cfg.Key,
			Timeout: timeout, MaxAttempts: 1 + retries, Rate: rps, Burst: max(1, int(rps)), HTTP: d.cfg.Client})
		if err != nil {
			d.cfg.Logger.Warn("rule webhook off: its deliveries will fail", "rule", r.Name, "err", err)
		}
		w.hook = hook
	}
	if dir := d.stateDir(r.Name); dir != "" {
		out, pending, err := openOutbox(dir, d.cfg.QueueLen)
		var dropped errDroppedAtStart
		switch {
		case errors.As(err, &dropped):
			d.dropped.Add(uint64(dropped.n))
			d.cfg.Logger.Warn("rule actions of the outbox dropped", "rule", r.Name, "err", err)
		case err != nil:
			d.cfg.Logger.Warn("rule outbox not opened: firings are kept in memory only, and a stop or crash loses those not carried out", "rule", r.Name, "err", err)
		}
		if out != nil {
			w.out = out
			if !d.firedTaken {
				d.lastFired = append(d.lastFired, out.lastFired...)
			}
			out.lastFired = nil
			for _, f := range pending {
				w.q <- f // fits: openOutbox returns at most QueueLen
			}
			if len(pending) > 0 {
				d.cfg.Logger.Info("rule actions pending at the last stop or crash queued again", "rule", r.Name, "firings", len(pending))
			}
		}
	}
	go d.run(ctx, w)
	return w
}

// FiredAtStart returns, once, the last firing of each rule and subject
// that the outboxes held when the dispatcher opened them, carried out or
// not: for Engine.Fired, since the engine's saved state may predate them.
func (d *Dispatcher) FiredAtStart() []Firing {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.lastFired
	d.lastFired, d.firedTaken = nil, true
	return out
}

// OutboxMark is where each rule's outbox ended at a moment (Mark).
type OutboxMark struct{ at map[*outbox]int64 }

// Mark marks where the outboxes end now. Take it before the engine's
// state is saved, and give it to StateSaved once saved.
func (d *Dispatcher) Mark() OutboxMark {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := OutboxMark{at: map[*outbox]int64{}}
	for _, w := range d.workers {
		if w.out != nil {
			m.at[w.out] = w.out.mark()
		}
	}
	return m
}

// StateSaved drops from the outboxes the firings carried out before m:
// the engine's state saved after m was taken has them. An outbox closed
// since (its rule changed or removed) is left as it is.
func (d *Dispatcher) StateSaved(m OutboxMark) error {
	d.mu.Lock()
	var outs []*outbox
	for _, w := range d.workers {
		if _, ok := m.at[w.out]; ok && w.out != nil {
			outs = append(outs, w.out)
		}
	}
	d.mu.Unlock()
	var errs []error
	for _, o := range outs {
		errs = append(errs, o.compact(m.at[o]))
	}
	return errors.Join(errs...)
}

func (d *Dispatcher) stateDir(rule string) string {
	if d.cfg.StateDir == "" {
		return ""
	}
	return WebhookDir(d.cfg.StateDir, rule)
}

// WebhookDir is the state directory of rule's webhook (its dead letters)
// under a dispatcher's StateDir.
func WebhookDir(stateDir, rule string) string {
	return filepath.Join(stateDir, hex.EncodeToString([]byte(rule)))
}

// DeadLetters is the dead-letter list of rule's webhook (nil if the rule
// has none, or no state directory).
func (d *Dispatcher) DeadLetters(rule string) *webhook.DeadLetters {
	d.mu.Lock()
	defer d.mu.Unlock()
	if w := d.workers[rule]; w != nil && w.hook != nil {
		return w.hook.DeadLetters()
	}
	return nil
}

// stop stops w's goroutine and closes its outbox; the firings not carried
// out stay in it, for the rule's next worker.
func (w *worker) stop() {
	w.cancel()
	<-w.done
	if w.out != nil {
		w.out.close()
	}
}

// Fire logs and counts f and queues its actions; it never blocks.
func (d *Dispatcher) Fire(f Firing) {
	d.fired.Add(1)
	n, _ := d.perRule.LoadOrStore(f.Rule, new(atomic.Uint64))
	n.(*atomic.Uint64).Add(1)
	d.histMu.Lock()
	if len(d.history) < d.cfg.HistoryLen {
		d.history = append(d.history, f)
	} else {
		d.history[d.histAt] = f
		d.histAt = (d.histAt + 1) % len(d.history)
	}
	d.histMu.Unlock()
	d.cfg.Logger.Info("rule fired", "rule", f.Rule, "subject", f.subject(), "type", f.Type, "seq", f.Seq, "value", f.Value, "time", f.Time)
	d.mu.Lock()
	w := d.workers[f.Rule]
	d.mu.Unlock()
	if w == nil {
		return // no action but the log line and the counter
	}
	queue := func() bool {
		select {
		case w.q <- f:
			return true
		default:
			d.dropped.Add(1)
			d.cfg.Logger.Warn("rule actions dropped: the rule's queue is full", "rule", f.Rule, "subject", f.subject())
			return false
		}
	}
	if w.out == nil {
		queue()
		return
	}
	if _, err := w.out.add(f, queue); err != nil {
		d.cfg.Logger.Error("rule outbox failed: a crash or stop now loses queued firings", "rule", f.Rule, "err", err)
	}
}

// History is the kept firings for device, oldest first.
func (d *Dispatcher) History(device string) []Firing {
	d.histMu.Lock()
	defer d.histMu.Unlock()
	out := []Firing{}
	for k := range d.history {
		if f := d.history[(d.histAt+k)%len(d.history)]; f.Device == device {
			out = append(out, f)
		}
	}
	return out
}

// Close stops the workers. The firings whose actions were not carried
// out yet — queued, or cut short by the stop — stay in each rule's outbox
// (OutboxFile, in its state directory), as they would after a crash, and
// are carried out first by the next dispatcher with that StateDir. It is
// idempotent.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for name, w := range d.workers {
		w.stop()
		delete(d.workers, name)
	}
}

func (d *Dispatcher) run(ctx context.Context, w *worker) {
	defer close(w.done)
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-w.q:
			if w.rule.Action.Alert {
				d.alert(ctx, f)
			}
			if c := w.rule.Action.Call; c != nil {
				d.call(ctx, f, *c)
			}
			if c := w.rule.Action.Command; c != nil {
				d.command(ctx, f, *c)
			}
			if w.rule.Action.Webhook != "" {
				d.deliver(ctx, w, f)
			}
			if ctx.Err() != nil {
				return // cut short by Close: f stays pending in the outbox
			}
			if w.out != nil {
				if err := w.out.done(); err != nil {
					d.cfg.Logger.Warn("rule outbox: marking a firing done failed; its actions may be carried out again after a restart", "rule", w.rule.Name, "err", err)
				}
			}
		}
	}
}

// alert stores f as an alert record.
func (d *Dispatcher) alert(ctx context.Context, f Firing) {
	if d.cfg.Alert == nil {
		d.alertsFailed.Add(1)
		d.cfg.Logger.Warn("rule alert not stored: this node stores no alert records", "rule", f.Rule, "subject", f.subject())
		return
	}
	if err := d.cfg.Alert(ctx, f); err != nil {
		d.alertsFailed.Add(1)
		d.cfg.Logger.Warn("rule alert not stored", "rule", f.Rule, "subject", f.subject(), "err", err)
		return
	}
	d.alerts.Add(1)
}

// call makes f's agreement call.
func (d *Dispatcher) call(ctx context.Context, f Firing, c Call) {
	if d.cfg.Call == nil {
		d.callsFailed.Add(1)
		d.cfg.Logger.Warn("rule agreement call not made: this node makes none", "rule", f.Rule, "subject", f.subject())
		return
	}
	c.Args = maps.Clone(c.Args)
	if err := d.cfg.Call(ctx, f, c); err != nil {
		d.callsFailed.Add(1)
		d.cfg.Logger.Warn("rule agreement call failed", "rule", f.Rule, "agreement", c.Agreement, "transition", c.Transition, "err", err)
		return
	}
	d.calls.Add(1)
}

// command sends c to f's device.
func (d *Dispatcher) command(ctx context.Context, f Firing, c Command) {
	if d.cfg.Command == nil || f.Device == "" {
		d.commandsFailed.Add(1)
		d.cfg.Logger.Warn("rule command not sent: this node sends none", "rule", f.Rule, "subject", f.subject())
		return
	}
	c.Args = maps.Clone(c.Args)
	if err := d.cfg.Command(ctx, f, c); err != nil {
		d.commandsFailed.Add(1)
		d.cfg.Logger.Warn("rule command failed", "rule", f.Rule, "device", f.Device, "command", c.Name, "err", err)
		return
	}
	d.commands.Add(1)
}

// deliver POSTs f to the rule's webhook (webhook.Deliverer.Send: 1 +
// Retries attempts, default 3 retries, each within Timeout, default 5s,
// back-off from 0.5 s doubling with jitter, at most Rate a second; a 4xx
// other than 408 and 429 is not retried); a delivery that fails them all
// is a dead letter.
func (d *Dispatcher) deliver(ctx context.Context, w *worker, f Firing) {
	if w.hook == nil {
		d.failed.Add(1)
		return
	}
	body, _ := json.Marshal(Delivery{Firing: f, Node: d.cfg.Key.ID()})
	// The delivery id names the firing: one per rule, device and reading
	// (a fleet rule's: class and census time), the same on every retry
	// (receivers de-duplicate by it).
	id := "rule/" + f.Rule + "/" + f.subject() + "/" + strconv.FormatUint(f.Seq, 10)
	before := w.hook.Retried()
	err := w.hook.Send(ctx, id, body)
	d.retried.Add(w.hook.Retried() - before)
	switch {
	case err == nil:
		d.delivered.Add(1)
	case ctx.Err() != nil:
	default:
		d.failed.Add(1)
		d.cfg.Logger.Warn("rule webhook failed", "rule", f.Rule, "subject", f.subject(), "url", w.rule.Action.Webhook, "err", err)
	}
}

// Collector exports the dispatcher's and the engine's counts to Prometheus;
// skipped counts the readings the engine never saw because it fell behind
// (nil: none).
func (d *Dispatcher) Collector(e *Engine, skipped func() int) prometheus.Collector {
	if skipped == nil {
		skipped = func() int { return 0 }
	}
	return collector{d, e, skipped}
}

type collector struct {
	d       *Dispatcher
	e       *Engine
	skipped func() int
}

var (
	descFired    = prometheus.NewDesc("thingnet_rules_fired_total", "Rule firings, by rule.", []string{"rule"}, nil)
	descWebhooks = prometheus.NewDesc("thingnet_rules_webhooks_total", "Rule webhook deliveries by outcome (delivered, retried, failed: dead-lettered, dropped: the rule's queue was full).", []string{"outcome"}, nil)
	descAlerts   = prometheus.NewDesc("thingnet_rules_alerts_total", "Rule alert records by outcome (stored, failed).", []string{"outcome"}, nil)
	descObserved = prometheus.NewDesc("thingnet_rules_readings_observed_total", "Stored readings given to the rules engine.", nil, nil)
	descSkipped  = prometheus.NewDesc("thingnet_rules_readings_skipped_total", "Stored readings the rules engine skipped because it fell behind the gateway.", nil, nil)
	descErrors   = prometheus.NewDesc("thingnet_rules_eval_errors_total", "Rule conditions that failed to evaluate (counted as false).", nil, nil)
	descDevices  = prometheus.NewDesc("thingnet_rules_devices", "Devices with windows in memory.", nil, nil)
	descCalls    = prometheus.NewDesc("thingnet_rules_calls_total", "Rule agreement calls by outcome (committed, failed).", []string{"outcome"}, nil)
	descCommands = prometheus.NewDesc("thingnet_rules_commands_total", "Rule commands to devices (one-device jobs) by outcome (committed, failed).", []string{"outcome"}, nil)
	descCensuses = prometheus.NewDesc("thingnet_rules_fleet_censuses_total", "Fleet censuses the fleet rules were evaluated on.", nil, nil)
)

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFired, descWebhooks, descAlerts, descObserved, descSkipped, descErrors, descDevices, descCensuses, descCalls, descCommands} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.d.perRule.Range(func(k, v any) bool {
		ch <- prometheus.MustNewConstMetric(descFired, prometheus.CounterValue, float64(v.(*atomic.Uint64).Load()), k.(string))
		return true
	})
	for _, o := range []struct {
		name string
		n    *atomic.Uint64
	}{{"delivered", &c.d.delivered}, {"retried", &c.d.retried}, {"failed", &c.d.failed}, {"dropped", &c.d.dropped}} {
		ch <- prometheus.MustNewConstMetric(descWebhooks, prometheus.CounterValue, float64(o.n.Load()), o.name)
	}
	ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.CounterValue, float64(c.d.alerts.Load()), "stored")
	ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.CounterValue, float64(c.d.alertsFailed.Load()), "failed")
	ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(c.d.calls.Load()), "committed")
	ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(c.d.callsFailed.Load()), "failed")
	ch <- prometheus.MustNewConstMetric(descCommands, prometheus.CounterValue, float64(c.d.commands.Load()), "committed")
	ch <- prometheus.MustNewConstMetric(descCommands, prometheus.CounterValue, float64(c.d.commandsFailed.Load()), "failed")
	s := c.e.Stats()
	ch <- prometheus.MustNewConstMetric(descObserved, prometheus.CounterValue, float64(s.Observed))
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(c.skipped()))
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(s.EvalErrors))
	ch <- prometheus.MustNewConstMetric(descDevices, prometheus.GaugeValue, float64(s.Devices))
	ch <- prometheus.MustNewConstMetric(descCensuses, prometheus.CounterValue, float64(s.Censuses))
}
