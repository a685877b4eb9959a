package message

import (
	"fmt"
	"time"

	"github.com/thingnet/thingnet/identity"
)

// Outgoing is a message to compose: to a device (To) or a topic (Topic).
type Outgoing struct {
	To    string
	Topic string
	Kind  string // KindMessage (default for To), KindCommand; KindPublish for a topic
	Type  string // content type, e.g. "text/plain"
	Body  []byte
	// Seal encrypts Body to the receiver with HPKE: its default suite, or
	// ML-KEM-768+X25519 when HybridKey (the receiver's announced key) is set.
	Seal      bool
	HybridKey []byte
	Wake      bool // ask the receiver's mailbox to wake it
}

// Compose signs (and seals, if asked) a message from device from (signing
// with its current key k) with sequence number seq; auth gives the chain
// and, for sealing, the receiver's key.
func Compose(k *identity.Key, from string, seq uint64, o Outgoing, auth Authority) ([]byte, error) {
	m := Message{Chain: auth.ChainID(), From: from, To: o.To, Topic: o.Topic, Seq: seq,
		Kind: o.Kind, Type: o.Type, Body: o.Body, Wake: o.Wake}
	if m.Kind == "" {
		m.Kind = KindMessage
		if o.Topic != "" {
			m.Kind = KindPublish
		}
	}
	if !o.Seal {
		return Sign(k, m)
	}
	if o.To == "" {
		return nil, fmt.Errorf("mesh: only a message to one device can be sealed")
	}
	to, err := auth.Device(o.To)
	if err != nil {
		return nil, fmt.Errorf("mesh: receiver: %w", err)
	}
	return Seal(k, m, to.Key, o.HybridKey)
}

// TimeSeq is a sequence number from a clock: microseconds since 1970, so
// that a sender with no storage still never reuses one.
func TimeSeq(now time.Time) uint64 { return uint64(now.UnixMicro()) }
