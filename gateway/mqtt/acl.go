package mqtt

import (
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// OnACLCheck answers mochi's questions. write: may cl publish to topic?
// Always yes here: OnPublish, which mochi calls next, refuses any topic but
// the device's own readings topic, and answers a v3 client properly (mochi
// would send it a DISCONNECT, which MQTT 3.1.1 does not have). Otherwise
// topic is the filter of a SUBSCRIBE or the topic of a message about to be
// delivered to cl: the ACL decides both, so a revoked grant stops deliveries
// at once. Shared subscriptions ($share/...) are refused: a device joining
// another's group would take a share of its messages.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if write {
		return true
	}
	if mochi.IsSharedFilter(topic) {
		return false
	}
	return h.cfg.ACL.MaySubscribe(cl.ID, topic)
}

// OnSubscribed counts the filters a SUBSCRIBE was granted and refused.
func (h *hook) OnSubscribed(cl *mochi.Client, pk packets.Packet, reasonCodes []byte) {
	for i, code := range reasonCodes {
		if code >= packets.ErrUnspecifiedError.Code {
			h.stats.subsRefused.Add(1)
			if i < len(pk.Filters) {
				h.log.Debug("mqtt: subscription refused", "device", cl.ID, "filter", truncate(pk.Filters[i].Filter, 200), "code", code)
			}
			continue
		}
		h.stats.subsAccepted.Add(1)
	}
}
