package mesh

import (
	"sync/atomic"

	"github.com/thingnet/thingnet/mesh/message"
)

type stats struct {
	received   atomic.Uint64 // messages read off the wire (direct, mailbox put, topic)
	delivered  atomic.Uint64 // handed to the application
	refused    [message.StatusCount]atomic.Uint64
	sent       atomic.Uint64
	mdnsFound  atomic.Uint64
	bans       atomic.Uint64
	wakes      atomic.Uint64 // wake-ups sent to sleeping devices
	wakeDenied [wakeDenyCount]atomic.Uint64
	stored     atomic.Uint64 // messages taken into mailboxes
	dropped    atomic.Uint64 // mailbox messages dropped for space (oldest first)
	pulled     atomic.Uint64 // mailbox messages acknowledged by their device
}

// Stats is a snapshot of a node's counters, for metrics.
type Stats struct {
	Peers          int
	Received       uint64
	Delivered      uint64
	Sent           uint64
	Refused        map[string]uint64 // by status
	MDNSFound      uint64
	Bans           uint64
	Wakes          uint64
	WakesDenied    map[string]uint64 // by reason
	MailboxStored  uint64
	MailboxDropped uint64
	MailboxPulled  uint64
	MailboxDepth   uint64 // messages held now
	MailboxBytes   uint64
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	s := Stats{
		Peers:     len(n.host.Network().Peers()),
		Received:  n.stats.received.Load(),
		Delivered: n.stats.delivered.Load(),
		Sent:      n.stats.sent.Load(),
		Refused:   map[string]uint64{},
		MDNSFound: n.stats.mdnsFound.Load(), Bans: n.stats.bans.Load(),
		Wakes: n.stats.wakes.Load(), WakesDenied: map[string]uint64{},
		MailboxStored: n.stats.stored.Load(), MailboxDropped: n.stats.dropped.Load(), MailboxPulled: n.stats.pulled.Load(),
	}
	for i := range n.stats.refused {
		if i != int(message.StatusDelivered) {
			s.Refused[message.Status(i).String()] = n.stats.refused[i].Load()
		}
	}
	for i := range n.stats.wakeDenied {
		s.WakesDenied[wakeDenyNames[i]] = n.stats.wakeDenied[i].Load()
	}
	if n.mailbox != nil {
		s.MailboxDepth, s.MailboxBytes = n.mailbox.totals()
	}
	return s
}
