package device

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/record"
)

// Device is one thing: its key, its gateways and its small persistent
// state. It is safe for concurrent use.
type Device struct {
	cfg config
	key *identity.Key
	id  string

	seq *seqStore

	mu        sync.Mutex
	cur       int         // the gateway in use
	failed    []time.Time // when each gateway last failed or lied; zero: never
	chainID   string
	org       string         // the device's organisation, once proved
	dataKey   *cachedDataKey // WithSealing: the data key sealed to (sealing.go)
	acked     uint64         // the last command executed
	ackLoaded bool
	mqtt      map[int]*mqttConn
	coap      map[int]*coapConn

	// checkMu serialises light-client work: the source is switched per
	// gateway while a check runs.
	checkMu sync.Mutex
	src     *switchSource
	lc      *lightclient.Client
	saved   int64 // height of the trusted header last saved
	// proofs holds state proofs fetched ahead in one request (prefetch)
	// for provedKey, by height and key; emptied before each gateway a
	// verified call asks.
	proofs map[string]*record.Proof

	reader *client.Identity // the device's tokens for API reads (apiClient)

	files   FileSource // UseFiles; under mu
	inbox   inbox      // mailbox reads over HTTP (Inbox)
	msgMu   sync.Mutex // message sequence numbers (NewMessage)
	lastMsg uint64

	// The desired configuration (config.go): cfgMu serialises applying it.
	cfgMu     sync.Mutex
	applied   *configState  // under cfgMu
	wake      time.Duration // SettingWake applied; under mu
	transport Transport     // SettingTransport applied; under mu

	// Jobs (jobs.go): jobsMu serialises running them.
	jobsMu sync.Mutex
	jobs   *jobsState // under jobsMu
}

// New makes a device with key k. It reads the persistent state from the
// state directory, if there is one, and talks to no gateway: a device
// restarted with no network keeps its trusted state and sequence numbers.
func New(k *identity.Key, opts ...Option) (*Device, error) {
	if k == nil {
		return nil, errors.New("device: no key")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	d := &Device{cfg: cfg, key: k, id: cfg.id, failed: make([]time.Time, len(cfg.gateways)),
		chainID: cfg.chainID, mqtt: map[int]*mqttConn{}, coap: map[int]*coapConn{}}
	if d.id == "" {
		d.id = k.ID()
	}
	d.src = &switchSource{d: d}
	d.reader = &client.Identity{Key: k, ID: d.id, ChainID: cfg.chainID, Lifetime: cfg.tokenLife, Now: cfg.now}
	if d.seq, err = openSeq(cfg.stateDir, cfg.seqBlock, cfg.now); err != nil {
		return nil, err
	}
	if err := d.loadTrusted(); err != nil {
		return nil, err
	}
	return d, nil
}

// ID is the device's id (its first key's did:key).
func (d *Device) ID() string { return d.id }

// Key is the device's key.
func (d *Device) Key() *identity.Key { return d.key }

// Gateway is the gateway the device used last (the first one that worked).
func (d *Device) Gateway() Gateway {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.gateways[d.cur]
}

// ChainID returns the chain id: the configured one, the trusted state's,
// or else the one the gateways report.
func (d *Device) ChainID(ctx context.Context) (string, error) {
	d.mu.Lock()
	id := d.chainID
	d.mu.Unlock()
	if id != "" {
		return id, nil
	}
	err := d.each(ctx, "asking the chain id", func(_ int, gw Gateway) error {
		st, err := d.apiClient(gw).Status(ctx)
		if err != nil {
			return err
		}
		if st.ChainID == "" {
			return errors.New("the gateway reports no chain id")
		}
		id = st.ChainID
		return nil
	})
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	if d.chainID == "" {
		d.chainID = id
	}
	id = d.chainID
	d.mu.Unlock()
	return id, nil
}

// Token returns a new CWT for this device (its MQTT password, or a bearer
// token for the gateway's HTTP API), valid for the token lifetime.
func (d *Device) Token(ctx context.Context) ([]byte, error) {
	chainID, err := d.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	return identity.NewCWT(d.key, d.id, chainID, d.cfg.now(), d.cfg.tokenLife)
}

// Sleep closes the device's connections to gateways (MQTT, CoAP), as a
// duty-cycled device does before it sleeps; the next Send reconnects.
func (d *Device) Sleep() {
	d.mu.Lock()
	mq, cp := d.mqtt, d.coap
	d.mqtt, d.coap = map[int]*mqttConn{}, map[int]*coapConn{}
	d.mu.Unlock()
	for _, c := range mq {
		c.close()
	}
	for _, c := range cp {
		c.close()
	}
}

// Close closes the connections and saves the trusted state.
func (d *Device) Close() error {
	d.Sleep()
	d.checkMu.Lock()
	defer d.checkMu.Unlock()
	return d.saveTrusted()
}

// apiClient is a client of gw's API that reads as the device itself: a
// device may read its own readings (and what it is granted), nothing else.
func (d *Device) apiClient(gw Gateway) *client.Client {
	c := client.New(gw.API)
	c.HTTP.Timeout = d.cfg.timeout
	c.Identity = d.reader
	return c
}

// each runs fn against the gateways in order of preference, those that
// failed in the last 30 s last, until fn succeeds. A gateway fn fails with
// (it is down, or it lied) is set aside for that long; so a device returns
// to its preferred gateway once it has had time to recover. It returns the
// errors of every gateway tried when none worked.
func (d *Device) each(ctx context.Context, what string, fn func(i int, gw Gateway) error) error {
	d.mu.Lock()
	now := d.cfg.now()
	var order, later []int
	for i, t := range d.failed {
		if !t.IsZero() && now.Sub(t) < d.cfg.retryFailed {
			later = append(later, i)
			continue
		}
		order = append(order, i)
	}
	order = append(order, later...)
	d.mu.Unlock()
	var errs []error
	for _, i := range order {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		gw := d.cfg.gateways[i]
		err := fn(i, gw)
		if err == nil {
			d.mu.Lock()
			if d.cur != i {
				d.cfg.log.Info("device: using another gateway", "device", d.id, "gateway", gw.API)
			}
			d.cur, d.failed[i] = i, time.Time{}
			d.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return errors.Join(append(errs, err)...)
		}
		d.cfg.log.Warn("device: gateway failed; trying the next one", "device", d.id, "gateway", gw.API, "while", what, "err", err)
		d.mu.Lock()
		d.failed[i] = d.cfg.now()
		d.mu.Unlock()
		errs = append(errs, fmt.Errorf("gateway %s: %w", gw.API, err))
	}
	return fmt.Errorf("device: %s: no gateway worked: %w", what, errors.Join(errs...))
}
