package coap

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/thingnet/thingnet/gateway/edge"
)

// Limiter bounds what a source address may cost.
type Limiter interface {
	// AllowMessage is asked with the key edge.SourceKey of the source
	// address (for IPv6 its /64) for every datagram a source sends, with the datagram's size
	// in bytes, before anything but its CoAP header and options is looked
	// at (the reading is decoded only after it allowed the datagram). A
	// block-wise upload is asked once, when it starts, with its announced
	// total size (Size1); its later blocks are bounded by the transfer
	// instead (see docs/coap.md).
	AllowMessage(key string, size int) bool
}

// Defaults of Config's zero fields.
const (
	DefaultListen           = "127.0.0.1:5683"
	DefaultMaxPayload       = 128 << 10 // a reading envelope's maximum (reading.MaxEnvelopeSize)
	DefaultIngestTimeout    = 10 * time.Second
	DefaultMaxInFlight      = 1024
	DefaultMaxSessions      = 10000
	DefaultMaxTransfers     = 64
	DefaultSessionIdle      = 60 * time.Second
	DefaultRetryAfter       = 2 * time.Second
	DefaultBlockwiseTimeout = 30 * time.Second
)

// maxPayloadLimit bounds Config.MaxPayload: block-wise uploads are held in
// memory until complete.
const maxPayloadLimit = 16 << 20

// Config configures a Server. Ingest and Limits are required; every other
// zero field takes its default.
type Config struct {
	// Listen is the UDP address to listen on; port 0 picks one. Default
	// DefaultListen.
	Listen string
	// MaxPayload bounds a request's payload in bytes, in one datagram or
	// assembled from Block1 blocks; a larger one is answered 4.13 with
	// Size1 = MaxPayload. Default DefaultMaxPayload (128 KiB).
	MaxPayload int
	// Logger receives the server's logs; default: none.
	Logger *slog.Logger
	// Ingest stores the readings. The server calls it with the device id
	// "" (CoAP authenticates no device: readings authenticate themselves
	// by their signature, and the Ingestor charges their device).
	Ingest edge.Ingestor
	// Limits rate-limits source addresses.
	Limits Limiter
	// IngestTimeout bounds one Ingest call; a reading not stored by then is
	// answered 5.03. Default DefaultIngestTimeout.
	IngestTimeout time.Duration

	// MaxInFlight bounds the requests being handled at once (each is at
	// most one Ingest call); beyond it requests are answered 5.03. Default
	// DefaultMaxInFlight.
	MaxInFlight int
	// MaxSessions bounds the client endpoints (address and port) the
	// server keeps state for; a request from a new endpoint beyond it is
	// answered 5.03. Default DefaultMaxSessions.
	MaxSessions int
	// MaxTransfers bounds the block-wise uploads being assembled at once
	// (each holds up to MaxPayload bytes); beyond it a new upload is
	// answered 5.03. Default DefaultMaxTransfers.
	MaxTransfers int
	// SessionIdle is how long an endpoint's state (its message
	// deduplication cache among it) is kept after its last datagram.
	// Default DefaultSessionIdle, longer than CoAP's MAX_TRANSMIT_SPAN
	// (45 s), so every retransmission of a request finds its answer.
	SessionIdle time.Duration
	// RetryAfter is the Max-Age of 5.03 and 4.29 answers: when the client
	// may try again. It is rounded up to whole seconds. Default
	// DefaultRetryAfter.
	RetryAfter time.Duration
	// BlockwiseTimeout is how long a block-wise upload may wait for its
	// next block before it is dropped. Default DefaultBlockwiseTimeout.
	BlockwiseTimeout time.Duration
}

// withDefaults returns c with its zero fields set to their defaults, or an
// error wrapping ErrConfig naming the bad field.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Ingest == nil:
		return c, fmt.Errorf("%w: Config.Ingest is required (it stores the readings)", ErrConfig)
	case c.Limits == nil:
		return c, fmt.Errorf("%w: Config.Limits is required (it rate-limits source addresses)", ErrConfig)
	case c.MaxPayload < 0 || c.MaxInFlight < 0 || c.MaxSessions < 0 || c.MaxTransfers < 0:
		return c, fmt.Errorf("%w: MaxPayload, MaxInFlight, MaxSessions and MaxTransfers must not be negative", ErrConfig)
	case c.IngestTimeout < 0 || c.SessionIdle < 0 || c.RetryAfter < 0 || c.BlockwiseTimeout < 0:
		return c, fmt.Errorf("%w: IngestTimeout, SessionIdle, RetryAfter and BlockwiseTimeout must not be negative", ErrConfig)
	case c.MaxPayload > maxPayloadLimit:
		return c, fmt.Errorf("%w: MaxPayload %d is above %d (uploads are assembled in memory)", ErrConfig, c.MaxPayload, maxPayloadLimit)
	case c.RetryAfter > 0xffffffff*time.Second:
		return c, fmt.Errorf("%w: RetryAfter %s does not fit CoAP's Max-Age", ErrConfig, c.RetryAfter)
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.IngestTimeout == 0 {
		c.IngestTimeout = DefaultIngestTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxTransfers == 0 {
		c.MaxTransfers = DefaultMaxTransfers
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = DefaultSessionIdle
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.BlockwiseTimeout == 0 {
		c.BlockwiseTimeout = DefaultBlockwiseTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// maxAge is RetryAfter in whole seconds, at least 1.
func (c Config) maxAge() uint32 {
	s := (c.RetryAfter + time.Second - 1) / time.Second
	return uint32(max(s, 1))
}
