package mesh

import (
	"crypto/sha256"
	"time"

	"github.com/thingnet/thingnet/mesh/message"
)

func hashOf(b []byte) [32]byte { return sha256.Sum256(b) }

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
		n.lastSeq = message.TimeSeq(n.cfg.Clock.Now())
	}
	n.lastSeq++
	return n.lastSeq
}

// Compose signs (and seals, if asked) a message from this node.
func (n *Node) Compose(o message.Outgoing) ([]byte, error) {
	return message.Compose(n.cfg.Key, n.id, n.NextSeq(), o, n.auth)
}

// timeNow is the node's clock.
func (n *Node) timeNow() time.Time { return n.cfg.Clock.Now() }
