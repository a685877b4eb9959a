package mqtt

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingnet/thingnet/gateway/edge"
	"github.com/thingnet/thingnet/internal/testutil"
)

// TestAckAfterIngest proves that the acknowledgement of a QoS 1 or 2
// reading comes only after Ingest returned: Ingest blocks until the test
// releases it, and nothing reaches the client meanwhile.
func TestAckAfterIngest(t *testing.T) {
	e := startBroker(t, nil)
	for _, version := range []byte{4, 5} {
		for _, qos := range []byte{1, 2} {
			t.Run(fmt.Sprintf("v%d/qos%d", version, qos), func(t *testing.T) {
				c := dialRaw(t, e.addr, version)
				c.mustConnect(e, devA)
				payload := fmt.Sprintf("block v%d qos%d", version, qos)
				c.publish(ReadingsTopic(devA), qos, 7, payload)
				select {
				case <-e.ingest.entered:
				case <-time.After(5 * time.Second):
					t.Fatal("Ingest was not called")
				}
				c.expectSilence(300*time.Millisecond, "acknowledgement while Ingest blocks")
				e.ingest.release <- struct{}{}
				ack := c.mustRead("acknowledgement")
				if !e.ingest.has(devA, payload) {
					t.Fatal("acknowledged before the reading was stored")
				}
				want := map[byte]byte{1: packets.Puback, 2: packets.Pubrec}[qos]
				if ack.FixedHeader.Type != want || ack.PacketID != 7 || ack.ReasonCode != 0 {
					t.Fatalf("got packet type %d id %d reason 0x%02x; want type %d id 7 success", ack.FixedHeader.Type, ack.PacketID, ack.ReasonCode, want)
				}
				if qos == 2 {
					c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 7})
					if pk := c.mustRead("PUBCOMP"); pk.FixedHeader.Type != packets.Pubcomp || pk.PacketID != 7 {
						t.Fatalf("got packet type %d id %d; want PUBCOMP 7", pk.FixedHeader.Type, pk.PacketID)
					}
				}
			})
		}
	}
}

// TestIngestRefusalsV5 checks the negative acknowledgements of MQTT 5, and
// that subscribers only ever see stored readings.
func TestIngestRefusalsV5(t *testing.T) {
	e := startBroker(t, nil)
	e.acl.grant(devB, ReadingsTopic(devA))
	sub := dialRaw(t, e.addr, 5)
	sub.mustConnect(e, devB)
	if codes := sub.subscribe(1, ReadingsTopic(devA)); codes[0] != 1 {
		t.Fatalf("SUBACK = %v; want [1]", codes)
	}

	c := dialRaw(t, e.addr, 5)
	c.mustConnect(e, devA)
	tests := []struct {
		payload string
		qos     byte
		ack     byte // packet type of the answer
		code    byte
		stored  bool
	}{
		{"good reading", 1, packets.Puback, 0x00, true},
		{"bad signature", 1, packets.Puback, 0x99, false},
		{"busy now", 1, packets.Puback, 0x97, false},
		{"fail to store", 1, packets.Puback, 0x80, false},
		{"bad at qos 2", 2, packets.Pubrec, 0x99, false},
		{"dup of a stored reading", 1, packets.Puback, 0x00, false},
	}
	for i, tt := range tests {
		id := uint16(i + 1)
		c.publish(ReadingsTopic(devA), tt.qos, id, tt.payload)
		ack := c.mustRead("acknowledgement of " + tt.payload)
		if ack.FixedHeader.Type != tt.ack || ack.PacketID != id || ack.ReasonCode != tt.code {
			t.Errorf("%q: got packet type %d id %d reason 0x%02x (%q); want type %d id %d reason 0x%02x",
				tt.payload, ack.FixedHeader.Type, ack.PacketID, ack.ReasonCode, ack.Properties.ReasonString, tt.ack, id, tt.code)
		}
		if got := e.ingest.has(devA, tt.payload); got != tt.stored {
			t.Errorf("%q: stored = %v; want %v", tt.payload, got, tt.stored)
		}
	}
	// A refused QoS 0 reading is dropped and the connection lives on.
	c.publish(ReadingsTopic(devA), 0, 0, "bad at qos 0")
	c.publish(ReadingsTopic(devA), 1, 99, "good again")
	if ack := c.mustRead("PUBACK"); ack.PacketID != 99 || ack.ReasonCode != 0 {
		t.Fatalf("got id %d reason 0x%02x; want PUBACK 99 success", ack.PacketID, ack.ReasonCode)
	}
	// The subscriber got the stored readings only, in order, and a
	// duplicate is not delivered again.
	var got []string
	for len(got) < 2 {
		pk := sub.mustRead("a delivered reading")
		if pk.FixedHeader.Type == packets.Publish {
			got = append(got, string(pk.Payload))
		}
	}
	if want := "good reading|good again"; strings.Join(got, "|") != want {
		t.Errorf("subscriber got %q; want %q", got, want)
	}
	st := e.b.Stats()
	if st.ReadingsAccepted != 3 || st.ReadingsDuplicate != 1 || st.ReadingsRefused[ReadingRejected] != 3 ||
		st.ReadingsRefused[ReadingOverloaded] != 1 || st.ReadingsRefused[ReadingError] != 1 {
		t.Errorf("Stats = %+v; want 3 accepted (1 duplicate), refused 3 rejected, 1 overloaded, 1 error", st)
	}
}

// TestIngestRefusalsV3 checks that MQTT 3.1.1, which has no negative
// PUBACK, is disconnected rather than acknowledged.
func TestIngestRefusalsV3(t *testing.T) {
	e := startBroker(t, nil)
	for _, payload := range []string{"bad signature", "busy now", "fail to store"} {
		for _, qos := range []byte{1, 2} {
			c := dialRaw(t, e.addr, 4)
			c.mustConnect(e, devA)
			c.publish(ReadingsTopic(devA), qos, 3, payload)
			c.expectClosed(fmt.Sprintf("v3 QoS %d %q", qos, payload))
		}
	}
	c := dialRaw(t, e.addr, 4)
	c.mustConnect(e, devA)
	c.publish(ReadingsTopic(devA), 0, 0, "bad at qos 0")
	c.publish(ReadingsTopic(devA), 1, 4, "good")
	if ack := c.mustRead("PUBACK"); ack.FixedHeader.Type != packets.Puback || ack.PacketID != 4 {
		t.Fatalf("got packet type %d id %d; want PUBACK 4", ack.FixedHeader.Type, ack.PacketID)
	}
	if n := e.ingest.count(devA); n != 1 {
		t.Errorf("%d readings stored; want 1", n)
	}
}

// TestIngestTimeout checks that a reading not stored within IngestTimeout
// is answered as overloaded, not acknowledged.
func TestIngestTimeout(t *testing.T) {
	e := startBroker(t, func(c *Config) { c.IngestTimeout = 200 * time.Millisecond })
	c := dialRaw(t, e.addr, 5)
	c.mustConnect(e, devA)
	c.publish(ReadingsTopic(devA), 1, 1, "block forever")
	if ack := c.mustRead("PUBACK"); ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != 0x97 {
		t.Fatalf("got packet type %d reason 0x%02x; want PUBACK 0x97", ack.FixedHeader.Type, ack.ReasonCode)
	}
	if e.ingest.has(devA, "block forever") {
		t.Error("the reading was stored")
	}
}

// TestPublishElsewhere checks that a device may publish only to its own
// readings topic.
func TestPublishElsewhere(t *testing.T) {
	e := startBroker(t, nil)
	e.acl.grant(devB, ReadingsTopic(devB), "things/"+devA+"/other")
	sub := dialRaw(t, e.addr, 5)
	sub.mustConnect(e, devB)
	sub.subscribe(1, ReadingsTopic(devB), "things/"+devA+"/other")

	topics := []string{ReadingsTopic(devB), "things/" + devA + "/other", "things/" + devA + "/readings/x"}
	c := dialRaw(t, e.addr, 5)
	c.mustConnect(e, devA)
	for i, topic := range topics {
		c.publish(topic, 1, uint16(i+1), "forged reading")
		if ack := c.mustRead("PUBACK"); ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != 0x87 {
			t.Errorf("v5 publish to %s: got packet type %d reason 0x%02x; want PUBACK 0x87", topic, ack.FixedHeader.Type, ack.ReasonCode)
		}
		c.publish(topic, 0, 0, "forged reading")
	}
	// The v3 clients below take devA's session over, which closes c: its
	// last QoS 0 PUBLISH must be read and refused first.
	testutil.WaitFor(t, testutil.Context(t, 5*time.Second), "the v5 refusals counted", func() bool {
		return e.b.Stats().ReadingsRefused[ReadingACL] == uint64(2*len(topics))
	})
	for _, topic := range topics {
		c3 := dialRaw(t, e.addr, 4)
		c3.mustConnect(e, devA)
		c3.publish(topic, 1, 1, "forged reading")
		c3.expectClosed("v3 publish to " + topic)
	}
	sub.expectSilence(200*time.Millisecond, "delivery of a forged reading")
	if e.ingest.count(devA)+e.ingest.count(devB) != 0 {
		t.Error("a forged reading reached Ingest")
	}
	if n := e.b.Stats().ReadingsRefused[ReadingACL]; n != 9 {
		t.Errorf("ReadingsRefused[acl] = %d; want 9", n)
	}
}

// TestOversize checks that a packet above MaxPacket closes the connection,
// before or after CONNECT.
func TestOversize(t *testing.T) {
	e := startBroker(t, func(c *Config) { c.MaxPacket = 1024 })
	c := dialRaw(t, e.addr, 5)
	c.mustConnect(e, devA)
	c.publish(ReadingsTopic(devA), 1, 1, strings.Repeat("x", 1024))
	c.expectClosed("oversize PUBLISH")

	c = dialRaw(t, e.addr, 4)
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: devA,
			UsernameFlag: true, Username: []byte(devA), PasswordFlag: true, Password: make([]byte, 2000),
		},
	})
	c.expectClosed("oversize CONNECT")

	c = dialRaw(t, e.addr, 5)
	c.mustConnect(e, devA)
	c.publish(ReadingsTopic(devA), 1, 2, strings.Repeat("y", 900))
	if ack := c.mustRead("PUBACK"); ack.ReasonCode != 0 {
		t.Fatalf("PUBACK of a packet under MaxPacket = 0x%02x; want 0", ack.ReasonCode)
	}
	if n := e.ingest.count(devA); n != 1 {
		t.Errorf("%d readings stored; want 1", n)
	}
	testutil.WaitFor(t, testutil.Context(t, 5*time.Second), "PacketsTooLarge == 2", func() bool { return e.b.Stats().PacketsTooLarge == 2 })
}

// TestMessageRateLimitV5 checks the v5 answer to a device over its message
// budget: PUBACK "quota exceeded", and the connection stays.
func TestMessageRateLimitV5(t *testing.T) {
	e := startBroker(t, nil)
	e.limits.setMessages(edge.DeviceKey(devA), 1)
	c := dialRaw(t, e.addr, 5)
	c.mustConnect(e, devA)
	for i, want := range []byte{0x00, 0x97, 0x97} {
		c.publish(ReadingsTopic(devA), 1, uint16(i+1), fmt.Sprintf("reading %d", i))
		if ack := c.mustRead("PUBACK"); ack.ReasonCode != want {
			t.Errorf("PUBACK %d = 0x%02x; want 0x%02x", i, ack.ReasonCode, want)
		}
	}
	if n := e.ingest.count(devA); n != 1 {
		t.Errorf("%d readings stored; want 1", n)
	}
}

// TestWillIgnored checks that a will cannot inject an unverified reading.
func TestWillIgnored(t *testing.T) {
	e := startBroker(t, nil)
	e.acl.grant(devB, ReadingsTopic(devA))
	sub := dialRaw(t, e.addr, 5)
	sub.mustConnect(e, devB)
	sub.subscribe(1, ReadingsTopic(devA))

	c := dialRaw(t, e.addr, 4)
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: devA,
			UsernameFlag: true, Username: []byte(devA), PasswordFlag: true, Password: e.auth.token(devA),
			WillFlag: true, WillTopic: ReadingsTopic(devA), WillPayload: []byte("unsigned reading"), WillQos: 1,
		},
	})
	if ack := c.mustRead("CONNACK"); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK = 0x%02x; want 0", ack.ReasonCode)
	}
	_ = c.conn.Close() // an abrupt end publishes the will, if there is one
	sub.expectSilence(300*time.Millisecond, "the will")
}
