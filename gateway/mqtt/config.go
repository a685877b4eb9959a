package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/thingnet/thingnet/gateway/edge"
)

// Authenticator checks a CONNECT: username = device id, password = a CWT
// signed by the device's current key.
type Authenticator interface {
	// Authenticate returns nil if token is a valid CWT of the active device
	// deviceID. Errors wrap edge.ErrUnknownDevice or edge.ErrInactiveDevice
	// (CONNACK "not authorized") or edge.ErrBadToken ("bad username or
	// password"); any other error is taken as the ledger being unavailable
	// (CONNACK "server unavailable").
	Authenticate(ctx context.Context, deviceID string, token []byte) error
}

// ACL answers subscriptions from ledger grants.
type ACL interface {
	// MaySubscribe reports whether deviceID may subscribe to topicFilter.
	// The broker asks it for the filter of every SUBSCRIBE (wildcards and
	// "$SYS/..." included, so "#" is denied unless the ACL allows it) and
	// again for the topic name of every message it delivers, so that a
	// revoked grant stops deliveries at once: it must be cheap.
	MaySubscribe(deviceID, topicFilter string) bool
}

// Limiter bounds cost per device id and per source address. Keys are
// edge.SourceKey and edge.DeviceKey.
type Limiter interface {
	// AllowConnect is asked for the source address, then for the device id,
	// before any signature work.
	AllowConnect(key string) bool
	// AllowMessage is asked for the device id with the payload size of every
	// PUBLISH (and the size of every SUBSCRIBE and UNSUBSCRIBE) before the
	// reading is ingested: the broker charges its devices' messages itself,
	// and the Ingestor, given the device id, does not charge them again
	// (package edge).
	AllowMessage(key string, size int) bool
}

// Defaults of Config's zero fields.
const (
	DefaultListen         = "127.0.0.1:1883"
	DefaultMaxPacket      = 128 << 10
	DefaultMaxClients     = 10000
	DefaultConnectTimeout = 10 * time.Second
	DefaultIngestTimeout  = 10 * time.Second
	DefaultMaxKeepalive   = 5 * time.Minute
)

// Config configures a Broker. Auth, Ingest, ACL and Limits are required;
// every other zero field takes its default.
type Config struct {
	// Listen is the TCP address to listen on; port 0 picks one. Default
	// DefaultListen.
	Listen string
	// TLS, if set, makes the listener speak MQTT over TLS.
	TLS *tls.Config
	// MaxPacket bounds a packet's size in bytes; a larger packet closes the
	// connection. Default DefaultMaxPacket (128 KiB).
	MaxPacket int
	// MaxClients bounds the connected clients; further CONNECTs are refused
	// with "server busy" (v5) / "server unavailable" (v3). Default
	// DefaultMaxClients.
	MaxClients int
	// ConnectTimeout bounds the time from accepting a connection to its
	// CONNECT being read and authenticated. Default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// IngestTimeout bounds one Ingest call; a reading not stored by then is
	// answered as overloaded. Default DefaultIngestTimeout.
	IngestTimeout time.Duration
	// MaxKeepalive caps the keepalive a client may ask for (0, "never",
	// included), so that an idle connection is eventually closed; a v5
	// client is told the server's keepalive in the CONNACK. Default
	// DefaultMaxKeepalive.
	MaxKeepalive time.Duration
	// Logger receives the broker's logs; default: none.
	Logger *slog.Logger

	Auth   Authenticator
	Ingest edge.Ingestor
	ACL    ACL
	Limits Limiter
}

// withDefaults returns c with its zero fields set to their defaults, or an
// error wrapping ErrConfig naming the bad field.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Auth == nil:
		return c, fmt.Errorf("%w: Config.Auth is required (it checks the devices' CWTs)", ErrConfig)
	case c.Ingest == nil:
		return c, fmt.Errorf("%w: Config.Ingest is required (it stores the readings)", ErrConfig)
	case c.ACL == nil:
		return c, fmt.Errorf("%w: Config.ACL is required (it answers subscriptions)", ErrConfig)
	case c.Limits == nil:
		return c, fmt.Errorf("%w: Config.Limits is required (it bounds connections and messages)", ErrConfig)
	case c.MaxPacket < 0 || c.MaxClients < 0 || c.ConnectTimeout < 0 || c.IngestTimeout < 0 || c.MaxKeepalive < 0:
		return c, fmt.Errorf("%w: MaxPacket, MaxClients and the durations must not be negative", ErrConfig)
	case c.MaxPacket > 256<<20:
		return c, fmt.Errorf("%w: MaxPacket %d is above MQTT's limit of 256 MiB", ErrConfig, c.MaxPacket)
	case c.MaxKeepalive > 0xffff*time.Second:
		return c, fmt.Errorf("%w: MaxKeepalive %s is above MQTT's limit of 65535 s", ErrConfig, c.MaxKeepalive)
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxPacket == 0 {
		c.MaxPacket = DefaultMaxPacket
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.IngestTimeout == 0 {
		c.IngestTimeout = DefaultIngestTimeout
	}
	if c.MaxKeepalive == 0 {
		c.MaxKeepalive = DefaultMaxKeepalive
	}
	if c.MaxKeepalive < time.Second {
		c.MaxKeepalive = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
