package device

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/thingnet/thingnet/lightclient"
)

// Transport is how readings go to a gateway.
type Transport string

// The transports a gateway serves.
const (
	HTTP Transport = "http" // POST /v1/readings on the gateway's API
	MQTT Transport = "mqtt" // QoS 1 PUBLISH to things/<id>/readings, CWT as the password
	CoAP Transport = "coap" // confirmable POST /r (UDP)
)

// ParseTransport reads "http", "mqtt" or "coap".
func ParseTransport(s string) (Transport, error) {
	switch t := Transport(strings.ToLower(s)); t {
	case HTTP, MQTT, CoAP:
		return t, nil
	}
	return "", fmt.Errorf("device: transport %q: use http, mqtt or coap", s)
}

// Gateway is where a gateway listens. API is required (headers, proofs and
// HTTP readings); MQTT and CoAP are needed only for those transports.
type Gateway struct {
	API  string // e.g. http://127.0.0.1:26602
	MQTT string // host:port
	CoAP string // host:port (UDP)
}

func (g Gateway) String() string { return g.API }

// Option configures a Device.
type Option func(*config)

type config struct {
	id          string
	gateways    []Gateway
	transport   Transport
	chainID     string
	stateDir    string
	trust       *lightclient.TrustOptions
	lcOpts      []lightclient.Option
	tokenLife   time.Duration
	timeout     time.Duration
	seqBlock    uint64
	log         *slog.Logger
	now         func() time.Time
	retryFailed time.Duration
	maxLag      int64
	maxAge      time.Duration
	seal        bool                      // WithSealing (sealing.go)
	sealRefresh time.Duration             // how long a data key is used before asking again
	handlers    map[string]ConfigHandler  // WithConfigHandler (config.go)
	commands    map[string]CommandHandler // WithCommandHandler (jobs.go)
}

// SeqBlock is how many sequence numbers are reserved per write of the
// sequence file (readings.md: "reserve blocks").
const SeqBlock = 1000

func newConfig(opts []Option) (config, error) {
	c := config{transport: HTTP, tokenLife: time.Hour, timeout: 10 * time.Second, seqBlock: SeqBlock,
		log: slog.New(slog.DiscardHandler), now: time.Now, retryFailed: 30 * time.Second,
		maxLag: DefaultMaxLag, maxAge: DefaultMaxAge}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case len(c.gateways) == 0:
		return c, errors.New("device: no gateway: pass WithGateways")
	case c.tokenLife < time.Minute || c.tokenLife > 24*time.Hour:
		return c, fmt.Errorf("device: token lifetime %v: want 1m to 24h", c.tokenLife)
	case c.timeout <= 0:
		return c, fmt.Errorf("device: timeout %v is not positive", c.timeout)
	case c.seqBlock == 0:
		return c, errors.New("device: sequence block of 0")
	case c.maxLag < 0 || c.maxAge < 0:
		return c, fmt.Errorf("device: negative freshness bound (lag %d, age %v)", c.maxLag, c.maxAge)
	}
	for i, g := range c.gateways {
		if g.API == "" {
			return c, fmt.Errorf("device: gateway %d has no API address", i)
		}
		if c.transport == MQTT && g.MQTT == "" {
			return c, fmt.Errorf("device: gateway %s has no MQTT address, and the transport is MQTT", g.API)
		}
		if c.transport == CoAP && g.CoAP == "" {
			return c, fmt.Errorf("device: gateway %s has no CoAP address, and the transport is CoAP", g.API)
		}
	}
	return c, nil
}

// WithGateways sets the gateways, in order of preference: the first that
// works is used until it fails or lies.
func WithGateways(gws ...Gateway) Option {
	return func(c *config) { c.gateways = append(c.gateways, gws...) }
}

// WithTransport sets how readings are sent (default HTTP).
func WithTransport(t Transport) Option { return func(c *config) { c.transport = t } }

// WithChainID sets the chain id (tokens' audience, light client). Without
// it the first gateway that answers is asked; the light client then
// refuses headers of any other chain.
func WithChainID(id string) Option { return func(c *config) { c.chainID = id } }

// WithID sets the device id when it is not the key's did:key (after a key
// rotation the id stays the first key's).
func WithID(id string) Option { return func(c *config) { c.id = id } }

// WithStateDir keeps the device's persistent state (trusted header, next
// sequence number) in dir. Without it the state lives in memory only.
func WithStateDir(dir string) Option { return func(c *config) { c.stateDir = dir } }

// WithTrust provisions the light client with a header the device trusts
// (its height and hash, e.g. from its organisation). It is used only when
// the state directory holds no trusted state yet.
func WithTrust(t lightclient.TrustOptions) Option { return func(c *config) { c.trust = &t } }

// WithLightClientOptions passes options to the light client.
func WithLightClientOptions(o ...lightclient.Option) Option {
	return func(c *config) { c.lcOpts = append(c.lcOpts, o...) }
}

// WithTokenLifetime sets the lifetime of the CWTs the device makes (default 1 h).
func WithTokenLifetime(d time.Duration) Option { return func(c *config) { c.tokenLife = d } }

// WithTimeout bounds each exchange with a gateway (default 10 s).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithLogger logs failovers and state saves.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// Freshness of the state a live decision (IsActiveAndGranted) is made on.
const (
	// DefaultMaxLag is how many blocks below the device's trusted header
	// a proof may be: a gateway a block or two behind is fine, one that
	// answers from an old state (when a revoked sender was still active)
	// is not.
	DefaultMaxLag = 3
	// DefaultMaxAge is how old the header a decision rests on may be, by
	// the device's clock: a gateway that keeps newer headers from the
	// device cannot make it decide on old state for longer than this.
	DefaultMaxAge = 5 * time.Minute
)

// WithFreshness bounds how stale the state IsActiveAndGranted decides on
// may be: at most maxLag blocks below the trusted header, whose time must
// be within maxAge of the device's clock (0: no age bound, for a device
// without a clock or a chain that makes no empty blocks).
func WithFreshness(maxLag int64, maxAge time.Duration) Option {
	return func(c *config) { c.maxLag, c.maxAge = maxLag, maxAge }
}

// WithClock sets the clock for reading times and tokens (default time.Now).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }
