package mqtt

import (
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestPipelinedAcks checks a connection's pipeline: while its first
// reading is still being stored, the broker goes on reading the connection
// (a PINGREQ is answered), takes the next readings, and acknowledges none
// of them until the first is stored; then every PUBLISH is answered in the
// order it came, refusals in their place.
func TestPipelinedAcks(t *testing.T) {
	e := startBroker(t, nil)
	c := dialRaw(t, e.addr, 5)
	c.mustConnect(e, devA)
	payloads := []string{"block first", "second", "bad third", "fourth", "busy fifth", "sixth"}
	codes := []byte{0, 0, 0x99, 0, 0x97, 0}
	for i, p := range payloads {
		c.publish(ReadingsTopic(devA), 1, uint16(i+1), p)
	}
	<-e.ingest.entered
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if pk := c.mustRead("PINGRESP"); pk.FixedHeader.Type != packets.Pingresp {
		t.Fatalf("got packet type %d while the first reading is stored; want PINGRESP (the connection is still read)", pk.FixedHeader.Type)
	}
	e.ingest.release <- struct{}{}
	for i, p := range payloads {
		ack := c.mustRead("PUBACK of " + p)
		if ack.FixedHeader.Type != packets.Puback || ack.PacketID != uint16(i+1) || ack.ReasonCode != codes[i] {
			t.Fatalf("answer %d: type %d id %d reason 0x%02x; want PUBACK id %d reason 0x%02x (in order)",
				i, ack.FixedHeader.Type, ack.PacketID, ack.ReasonCode, i+1, codes[i])
		}
		if stored := codes[i] == 0; e.ingest.has(devA, p) != stored {
			t.Errorf("%q: stored = %v; want %v", p, !stored, stored)
		}
	}
}

// TestPipelineBackPressure checks the per-connection cap: with the first
// reading still being stored and the pipeline full, the broker stops
// reading the connection (a PINGREQ behind the readings waits), and goes on
// once the reading is stored.
func TestPipelineBackPressure(t *testing.T) {
	e := startBroker(t, nil)
	c := dialRaw(t, e.addr, 4)
	c.mustConnect(e, devA)
	n := receiveMaximum + 2 // one being stored, receiveMaximum waiting, one read and held
	c.publish(ReadingsTopic(devA), 1, 1, "block first")
	<-e.ingest.entered
	for i := 2; i <= n; i++ {
		c.publish(ReadingsTopic(devA), 1, uint16(i), fmt.Sprintf("reading %d", i))
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	c.expectSilence(300*time.Millisecond, "an answer while the pipeline is full")
	e.ingest.release <- struct{}{}
	// The PINGRESP comes once the first reading's answer freed a place:
	// the settling goroutine takes that answer and then writes its PUBACK,
	// while the read loop, free to go on, reads the PINGREQ, so either
	// may reach the wire first.
	next, ping := uint16(1), false
	for int(next) <= n || !ping {
		pk := c.mustRead("PUBACK or PINGRESP")
		switch {
		case pk.FixedHeader.Type == packets.Pingresp && !ping:
			ping = true
		case pk.FixedHeader.Type == packets.Puback && pk.PacketID == next:
			next++
		default:
			t.Fatalf("got type %d id %d after %d PUBACKs (PINGRESP: %v); want PUBACK id %d in order, and one PINGRESP",
				pk.FixedHeader.Type, pk.PacketID, next-1, ping, next)
		}
	}
}
