package ratelimit

import (
	"fmt"
	"math"
	"time"
)

// Limits are the limits that a Limiter enforces on every key.
type Limits struct {
	MsgsPerSec     float64 // sustained messages per second
	Burst          int     // messages that may arrive at once
	BytesPerSec    float64 // sustained bytes per second
	ByteBurst      int     // bytes that may arrive at once; at least MaxPacket
	ConnectsPerSec float64 // sustained connection attempts per second
	ConnectBurst   int     // connection attempts that may arrive at once
	MaxPacket      int     // largest message, in bytes
}

// DefaultLimits returns the limits suggested for a device: 10 messages/s
// (burst 20), 64 KiB/s (burst 128 KiB), 1 connection/s (burst 3), and
// packets of at most 128 KiB.
func DefaultLimits() Limits {
	return Limits{
		MsgsPerSec:     10,
		Burst:          20,
		BytesPerSec:    64 << 10,
		ByteBurst:      128 << 10,
		ConnectsPerSec: 1,
		ConnectBurst:   3,
		MaxPacket:      128 << 10,
	}
}

// Validate checks that l can be enforced. Errors wrap ErrInvalidLimits.
func (l Limits) Validate() error {
	rates := []struct {
		name string
		v    float64
	}{{"MsgsPerSec", l.MsgsPerSec}, {"BytesPerSec", l.BytesPerSec}, {"ConnectsPerSec", l.ConnectsPerSec}}
	for _, r := range rates {
		if !(r.v > 0) || math.IsInf(r.v, 0) {
			return fmt.Errorf("%w: %s is %v, want a positive finite number", ErrInvalidLimits, r.name, r.v)
		}
	}
	bursts := []struct {
		name string
		v    int
	}{{"Burst", l.Burst}, {"ByteBurst", l.ByteBurst}, {"ConnectBurst", l.ConnectBurst}, {"MaxPacket", l.MaxPacket}}
	for _, b := range bursts {
		if b.v < 1 {
			return fmt.Errorf("%w: %s is %d, want 1 or more", ErrInvalidLimits, b.name, b.v)
		}
	}
	if l.ByteBurst < l.MaxPacket {
		return fmt.Errorf("%w: ByteBurst %d is below MaxPacket %d: packets in between could never pass", ErrInvalidLimits, l.ByteBurst, l.MaxPacket)
	}
	return nil
}

// Reasons for a refusal, as Decision.Reason. They are stable, for metrics
// labels and logs.
const (
	ReasonPacketTooLarge = "packet_too_large" // over MaxPacket; retrying cannot help
	ReasonRate           = "rate"             // message bucket empty
	ReasonBytes          = "bytes"            // byte bucket too low for this packet
	ReasonConnectRate    = "connect_rate"     // connection bucket empty
	ReasonInvalid        = "invalid"          // empty or over-long key, or negative size: a caller bug
)

// Decision is the answer to one request.
type Decision struct {
	Allowed bool
	// Reason is one of the Reason constants when the request is refused.
	Reason string
	// RetryAfter is, for a refusal by a bucket, how long until the same
	// request would be allowed (if nothing else is spent meanwhile); 0
	// when allowed, or when retrying cannot help.
	RetryAfter time.Duration
}

// retryAfter is how long a bucket at rate per second takes to gain need
// tokens, rounded up to the nanosecond.
func retryAfter(need, rate float64) time.Duration {
	if need <= 0 {
		return 0
	}
	d := math.Ceil(need / rate * float64(time.Second))
	if d > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}
