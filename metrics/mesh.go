package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thingnet/thingnet/mesh/message"
)

// MeshStats is what the mesh metrics read.
type MeshStats interface{ Stats() message.Stats }

// Mesh exports a mesh node's counters: peers, messages received,
// delivered and refused by reason, mailbox depth and drops, wake-ups sent
// and denied by reason (denial-of-sleep attempts).
func (r *Registry) Mesh(m MeshStats) {
	const sub = "mesh"
	peers := newDesc(sub, "peers", "libp2p peers connected.")
	received := newDesc(sub, "messages_received_total", "Signed messages read off the mesh (direct, mailbox deposits, topics).")
	delivered := newDesc(sub, "messages_delivered_total", "Messages delivered to this node's application.")
	sent := newDesc(sub, "messages_sent_total", "Messages this node sent or published.")
	refused := newDesc(sub, "messages_refused_total", "Messages refused, by reason (unknown_sender, not_granted, replay, bad_signature, ...).", "reason")
	bans := newDesc(sub, "peer_bans_total", "Peers cut off for sending too many refused messages.")
	mdns := newDesc(sub, "mdns_peers_found_total", "Peers found on the local network by mDNS.")
	wakes := newDesc(sub, "wakeups_total", "Sleeping devices woken for an authorized sender within budget.")
	denied := newDesc(sub, "wakeups_denied_total", "Wake-up attempts not honoured, by reason (unauthorized, sender_quota, device_budget).", "reason")
	stored := newDesc(sub, "mailbox_stored_total", "Messages taken into mailboxes for sleeping devices.")
	dropped := newDesc(sub, "mailbox_dropped_total", "Mailbox messages dropped because a device's mailbox was full (oldest first).")
	pulled := newDesc(sub, "mailbox_pulled_total", "Mailbox messages acknowledged by their device.")
	depth := newDesc(sub, "mailbox_messages", "Messages held in mailboxes now.")
	bytes := newDesc(sub, "mailbox_bytes", "Bytes held in mailboxes now.")
	r.reg.MustRegister(&snapshot{
		descs: []*prometheus.Desc{peers, received, delivered, sent, refused, bans, mdns, wakes, denied, stored, dropped, pulled, depth, bytes},
		collect: func(ch chan<- prometheus.Metric) {
			st := m.Stats()
			gauge(ch, peers, float64(st.Peers))
			counter(ch, received, st.Received)
			counter(ch, delivered, st.Delivered)
			counter(ch, sent, st.Sent)
			counters(ch, refused, st.Refused)
			counter(ch, bans, st.Bans)
			counter(ch, mdns, st.MDNSFound)
			counter(ch, wakes, st.Wakes)
			counters(ch, denied, st.WakesDenied)
			counter(ch, stored, st.MailboxStored)
			counter(ch, dropped, st.MailboxDropped)
			counter(ch, pulled, st.MailboxPulled)
			gauge(ch, depth, float64(st.MailboxDepth))
			gauge(ch, bytes, float64(st.MailboxBytes))
		},
	})
}
