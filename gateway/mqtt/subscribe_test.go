package mqtt

import (
	"slices"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingnet/thingnet/gateway/edge"
)

// TestSubscribeACL checks the SUBACK codes of both versions: only what the
// ACL grants, never "#", wildcards or $SYS unless granted, never shared
// subscriptions.
func TestSubscribeACL(t *testing.T) {
	e := startBroker(t, nil)
	e.acl.grant(devB, ReadingsTopic(devA), "things/+/readings")
	filters := []string{ReadingsTopic(devA), "#", "things/+/readings", "$SYS/#", "$share/g/" + ReadingsTopic(devA), ReadingsTopic(devB)}
	for version, want := range map[byte][]byte{
		5: {1, 0x87, 1, 0x87, 0x87, 0x87},
		4: {1, 0x80, 1, 0x80, 0x80, 0x80},
	} {
		c := dialRaw(t, e.addr, version)
		c.mustConnect(e, devB)
		if got := c.subscribe(1, filters...); !slices.Equal(got, want) {
			t.Errorf("v%d SUBACK for %q = %x; want %x", version, filters, got, want)
		}
	}
	if st := e.b.Stats(); st.SubscribesAccepted != 4 || st.SubscribesRefused != 8 {
		t.Errorf("Stats: %d subscribes accepted, %d refused; want 4 and 8", st.SubscribesAccepted, st.SubscribesRefused)
	}
}

// TestRetainedReading checks that a retained reading, once stored, reaches
// a granted subscriber that comes later.
func TestRetainedReading(t *testing.T) {
	e := startBroker(t, nil)
	e.acl.grant(devB, ReadingsTopic(devA))
	a := dialRaw(t, e.addr, 5)
	a.mustConnect(e, devA)
	a.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:   ReadingsTopic(devA), PacketID: 1, Payload: []byte("last value"),
	})
	if ack := a.mustRead("PUBACK"); ack.ReasonCode != 0 {
		t.Fatalf("PUBACK = 0x%02x; want 0", ack.ReasonCode)
	}
	a.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:   ReadingsTopic(devA), PacketID: 2, Payload: []byte("bad retained"),
	})
	if ack := a.mustRead("PUBACK"); ack.ReasonCode != 0x99 {
		t.Fatalf("PUBACK = 0x%02x; want 0x99", ack.ReasonCode)
	}
	b := dialRaw(t, e.addr, 5)
	b.mustConnect(e, devB)
	b.subscribe(1, ReadingsTopic(devA))
	pk := b.mustRead("the retained reading")
	if pk.FixedHeader.Type != packets.Publish || string(pk.Payload) != "last value" {
		t.Fatalf("got packet type %d payload %q; want the retained reading", pk.FixedHeader.Type, pk.Payload)
	}
}

// TestSubscribeFlood checks that SUBSCRIBEs are charged to the device's
// message budget and a flood of them ends the connection.
func TestSubscribeFlood(t *testing.T) {
	e := startBroker(t, nil)
	e.limits.setMessages(edge.DeviceKey(devB), 2)
	c := dialRaw(t, e.addr, 5)
	c.mustConnect(e, devB)
	c.subscribe(1, "a")
	c.subscribe(2, "b")
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 3,
		Filters: packets.Subscriptions{{Filter: "c"}},
	})
	c.expectClosed("third SUBSCRIBE over a budget of 2")
	if n := e.b.Stats().RateLimited[LimitControl]; n != 1 {
		t.Errorf("RateLimited[control] = %d; want 1", n)
	}
}
