package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
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
	// QueueLen bounds the firings waiting for delivery; past it a firing's
	// webhook is dropped (and counted). Default 1024.
	QueueLen int
	// HistoryLen is how many recent firings History keeps (all devices
	// together, in memory); default 1024.
	HistoryLen int
	// Alert stores a firing as an alert record, for rules whose action
	// asks for one (the node: a reading of its gateway, in its log).
	Alert  func(context.Context, Firing) error
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
}

// Dispatcher carries out the actions of firings: a log line and a counter
// for each, and the rule's webhook, delivered by one worker with a timeout
// per attempt and bounded retries with exponential back-off, so that a
// slow endpoint never blocks the readings' path.
type Dispatcher struct {
	cfg     DispatcherConfig
	rulesMu sync.Mutex
	rules   map[string]Rule
	q       chan Firing
	done    chan struct{}
	wg      sync.WaitGroup

	histMu  sync.Mutex
	history []Firing // ring of the last HistoryLen firings, oldest at histAt once full
	histAt  int

	fired, delivered, retried, failed, dropped atomic.Uint64
	alerts, alertsFailed                       atomic.Uint64
	perRule                                    sync.Map // rule name -> *atomic.Uint64
}

// NewDispatcher starts a dispatcher's worker; Close stops it.
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
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HistoryLen <= 0 {
		c.HistoryLen = 1024
	}
	d := &Dispatcher{cfg: c, q: make(chan Firing, c.QueueLen), done: make(chan struct{})}
	d.SetRules(c.Rules)
	d.wg.Add(1)
	go d.run()
	return d
}

// SetRules replaces the rules whose actions the dispatcher carries out
// (with Engine.SetRules). A queued firing of a removed rule is dropped.
func (d *Dispatcher) SetRules(rs []Rule) {
	m := make(map[string]Rule, len(rs))
	for _, r := range rs {
		m[r.Name] = r
	}
	d.rulesMu.Lock()
	d.rules = m
	d.rulesMu.Unlock()
}

// action is the action of rule name (zero if it is gone).
func (d *Dispatcher) action(name string) Action {
	d.rulesMu.Lock()
	defer d.rulesMu.Unlock()
	return d.rules[name].Action
}

// Fire logs and counts f and queues its webhook; it never blocks.
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
	if a := d.action(f.Rule); a.Webhook == "" && !a.Alert {
		return
	}
	select {
	case d.q <- f:
	default:
		d.dropped.Add(1)
		d.cfg.Logger.Warn("rule webhook dropped: the queue is full", "rule", f.Rule, "device", f.Device)
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

// Close stops the worker; queued deliveries not yet made are abandoned.
func (d *Dispatcher) Close() {
	close(d.done)
	d.wg.Wait()
}

func (d *Dispatcher) run() {
	defer d.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-d.done; cancel() }()
	for {
		select {
		case <-d.done:
			return
		case f := <-d.q:
			a := d.action(f.Rule)
			if a.Alert {
				d.alert(ctx, f)
			}
			if a.Webhook != "" {
				d.deliver(ctx, a, f)
			}
		}
	}
}

// alert stores f as an alert record.
func (d *Dispatcher) alert(ctx context.Context, f Firing) {
	if d.cfg.Alert == nil {
		d.alertsFailed.Add(1)
		d.cfg.Logger.Warn("rule alert not stored: this node stores no alert records", "rule", f.Rule, "device", f.Device)
		return
	}
	if err := d.cfg.Alert(ctx, f); err != nil {
		d.alertsFailed.Add(1)
		d.cfg.Logger.Warn("rule alert not stored", "rule", f.Rule, "device", f.Device, "err", err)
		return
	}
	d.alerts.Add(1)
}

// deliver POSTs f to the action's webhook: 1 + Retries attempts (default
// 3 retries), each within Timeout (default 5s), 500ms, 1s, 2s... apart; a
// 2xx answer delivers it, a 4xx other than 429 fails it at once.
func (d *Dispatcher) deliver(ctx context.Context, a Action, f Firing) {
	timeout, retries := a.Timeout.Duration, a.Retries
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	if a.Retries == 0 {
		retries = 3
	}
	body, _ := json.Marshal(Delivery{Firing: f, Node: d.cfg.Key.ID()})
	// The delivery id names the firing: one per rule, device and reading
	// (a fleet rule's: class and census time), the same on every retry
	// (receivers de-duplicate by it).
	id := "rule/" + f.Rule + "/" + f.subject() + "/" + strconv.FormatUint(f.Seq, 10)
	wait := 500 * time.Millisecond
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			d.retried.Add(1)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait *= 2
		}
		var final bool
		final, last = d.post(ctx, a.Webhook, id, timeout, body)
		if last == nil {
			d.delivered.Add(1)
			return
		}
		if final {
			break
		}
	}
	d.failed.Add(1)
	d.cfg.Logger.Warn("rule webhook failed", "rule", f.Rule, "device", f.Device, "url", a.Webhook, "err", last)
}

// post makes one attempt; final says that trying again cannot help.
func (d *Dispatcher) post(ctx context.Context, url, deliveryID string, timeout time.Duration, body []byte) (final bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return true, err
	}
	if err := webhook.SignRequest(req.Header, d.cfg.Key, d.cfg.Key.ID(), deliveryID, d.cfg.Now(), body); err != nil {
		return true, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return false, nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests:
		return true, fmt.Errorf("HTTP %d", resp.StatusCode)
	default:
		return false, fmt.Errorf("HTTP %d", resp.StatusCode)
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
	descWebhooks = prometheus.NewDesc("thingnet_rules_webhooks_total", "Rule webhook deliveries by outcome (delivered, retried, failed, dropped).", []string{"outcome"}, nil)
	descAlerts   = prometheus.NewDesc("thingnet_rules_alerts_total", "Rule alert records by outcome (stored, failed).", []string{"outcome"}, nil)
	descObserved = prometheus.NewDesc("thingnet_rules_readings_observed_total", "Stored readings given to the rules engine.", nil, nil)
	descSkipped  = prometheus.NewDesc("thingnet_rules_readings_skipped_total", "Stored readings the rules engine skipped because it fell behind the gateway.", nil, nil)
	descErrors   = prometheus.NewDesc("thingnet_rules_eval_errors_total", "Rule conditions that failed to evaluate (counted as false).", nil, nil)
	descDevices  = prometheus.NewDesc("thingnet_rules_devices", "Devices with windows in memory.", nil, nil)
	descCensuses = prometheus.NewDesc("thingnet_rules_fleet_censuses_total", "Fleet censuses the fleet rules were evaluated on.", nil, nil)
)

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFired, descWebhooks, descAlerts, descObserved, descSkipped, descErrors, descDevices, descCensuses} {
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
	s := c.e.Stats()
	ch <- prometheus.MustNewConstMetric(descObserved, prometheus.CounterValue, float64(s.Observed))
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(c.skipped()))
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(s.EvalErrors))
	ch <- prometheus.MustNewConstMetric(descDevices, prometheus.GaugeValue, float64(s.Devices))
	ch <- prometheus.MustNewConstMetric(descCensuses, prometheus.CounterValue, float64(s.Censuses))
}
