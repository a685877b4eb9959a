package mqtt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// FuzzSession sends arbitrary bytes to a running broker: as the whole
// connection (so the bytes are the CONNECT), or after a valid CONNECT of
// device A (so they are its packets), then a DISCONNECT. Whatever the
// bytes, the broker must not panic, must close or answer within a bound,
// must store readings only for device A and only from its authenticated
// session (the fuzzer holds no valid token of its own: a CONNECT in the
// bytes carries a forged one), and must go on serving.
func FuzzSession(f *testing.F) {
	// Short timeouts bound a truncated packet: the broker waits for the rest
	// at most ConnectTimeout (before CONNECT) or 1.5 keepalives (after).
	e := startBroker(f, func(c *Config) { c.ConnectTimeout, c.MaxKeepalive = 500*time.Millisecond, time.Second })
	enc := func(pk packets.Packet) []byte {
		var buf bytes.Buffer
		var err error
		switch pk.FixedHeader.Type {
		case packets.Connect:
			err = pk.ConnectEncode(&buf)
		case packets.Publish:
			err = pk.PublishEncode(&buf)
		case packets.Subscribe:
			err = pk.SubscribeEncode(&buf)
		}
		if err != nil {
			f.Fatal(err)
		}
		return buf.Bytes()
	}
	for _, v := range []byte{4, 5} {
		pub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: ReadingsTopic(devA), PacketID: 3, Payload: []byte("r1"), ProtocolVersion: v}
		other := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: ReadingsTopic(devB), PacketID: 4, Payload: []byte("r2"), ProtocolVersion: v}
		sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 5, ProtocolVersion: v,
			Filters: packets.Subscriptions{{Filter: "things/#", Qos: 1}}}
		conn := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: v, Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: devB,
			UsernameFlag: true, Username: []byte(devB), PasswordFlag: true, Password: fakeToken([]byte("not the device key"), devB, time.Now().Add(time.Hour))}}
		f.Add(true, v, append(append(enc(pub), enc(other)...), enc(sub)...))
		f.Add(false, v, append(enc(conn), enc(pub)...))
		f.Add(false, v, []byte{0x10, 0xff, 0xff, 0xff, 0x7f})
	}
	probes := 0
	f.Fuzz(func(t *testing.T, connected bool, version byte, stream []byte) {
		if version != 4 && version != 5 {
			version = 4 + version%2
		}
		e.ingest.idle() // the last session's readings are stored before counting
		before, beforeB := e.ingest.count(devA), e.ingest.count(devB)
		c := dialRaw(t, e.addr, version)
		if connected {
			if ack := c.connectAck(devA, devA, e.auth.token(devA)); ack.ReasonCode != 0 {
				t.Fatalf("device A refused (0x%02x): the broker no longer serves", ack.ReasonCode)
			}
		}
		if _, err := c.conn.Write(stream); err != nil && !isReset(err) && !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write: %v", err)
		}
		_, _ = c.conn.Write([]byte{0xe0, 0x00}) // DISCONNECT
		// The broker must close the connection soon: it ends every session
		// on a DISCONNECT, a malformed packet, a refusal or a timeout.
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c.conn); err != nil && !isReset(err) {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the broker kept the connection open 10 s (stream % x)", stream)
			}
		}
		if got := e.ingest.count(devB); got != beforeB {
			t.Fatalf("a reading was stored for device B, whose token was forged (stream % x)", stream)
		}
		if !connected && e.ingest.count(devA) != before {
			t.Fatalf("a reading of device A was stored without its CONNECT (stream % x)", stream)
		}
		if probes++; probes%64 == 0 { // still serving a valid device
			p := dialRaw(t, e.addr, 5)
			if ack := p.connectAck(devA, devA, e.auth.token(devA)); ack.ReasonCode != 0 {
				t.Fatalf("device A refused (0x%02x) after fuzzed sessions", ack.ReasonCode)
			}
		}
	})
}
