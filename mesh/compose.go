package mesh

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/thingnet/thingnet/identity"
)

func hashOf(b []byte) [32]byte { return sha256.Sum256(b) }

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

// NextSeq returns a sequence number above every one this node used
// before, also across restarts, with no storage: the first is the clock in
// microseconds, the next ones count up from it (dense, so that messages
// that overtake each other stay within the receiver's replay window). It
// stays above the previous run's as long as the node sent fewer than one
// message per microsecond of its uptime, and the clock does not run
// backwards across the restart.
func (n *Node) NextSeq() uint64 {
	n.seqMu.Lock()
	defer n.seqMu.Unlock()
	if n.lastSeq == 0 {
		n.lastSeq = TimeSeq(n.cfg.Clock.Now())
	}
	n.lastSeq++
	return n.lastSeq
}

// Compose signs (and seals, if asked) a message from this node.
func (n *Node) Compose(o Outgoing) ([]byte, error) {
	return Compose(n.cfg.Key, n.id, n.NextSeq(), o, n.auth)
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

// timeNow is the node's clock.
func (n *Node) timeNow() time.Time { return n.cfg.Clock.Now() }
