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

// Stats returns the node's counters.
func (n *Node) Stats() message.Stats {
	s := message.Stats{
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
