package mqtt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawClient speaks MQTT packet by packet (encoded with mochi's codec), to
// see exactly which packets and reason codes the broker sends, and when.
type rawClient struct {
	t       *testing.T
	conn    net.Conn
	r       *bufio.Reader
	version byte // 4: v3.1.1, 5: v5
}

func dialRaw(t *testing.T, addr string, version byte) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), version: version}
}

func (c *rawClient) send(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	default:
		err = fmt.Errorf("rawClient cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatalf("encode: %v", err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet from the broker, or an error (a timeout, or
// io.EOF once the broker closed the connection).
func (c *rawClient) read(timeout time.Duration) (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	var pk packets.Packet
	b, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = c.version
	pk.FixedHeader.Remaining = n
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// mustRead is read that fails the test on an error.
func (c *rawClient) mustRead(what string) packets.Packet {
	c.t.Helper()
	pk, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("reading %s: %v", what, err)
	}
	return pk
}

// expectClosed fails the test unless the broker closes the connection
// (possibly after a DISCONNECT) without sending anything else.
func (c *rawClient) expectClosed(what string) {
	c.t.Helper()
	for {
		pk, err := c.read(5 * time.Second)
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err):
			return
		case err != nil:
			c.t.Fatalf("%s: want the connection closed, got %v", what, err)
		case pk.FixedHeader.Type != packets.Disconnect:
			c.t.Fatalf("%s: want the connection closed, got packet type %d (reason 0x%02x)", what, pk.FixedHeader.Type, pk.ReasonCode)
		}
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// expectSilence fails the test if the broker sends anything within d.
func (c *rawClient) expectSilence(d time.Duration, what string) {
	c.t.Helper()
	pk, err := c.read(d)
	if err == nil {
		c.t.Fatalf("%s: got packet type %d (reason 0x%02x) before it was due", what, pk.FixedHeader.Type, pk.ReasonCode)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("%s: want no packet, got %v", what, err)
	}
}

// connect sends a CONNECT with username dev, password token and client id
// clientID, and returns the CONNACK's reason code.
func (c *rawClient) connect(dev, clientID string, token []byte) byte {
	c.t.Helper()
	return c.connectAck(dev, clientID, token).ReasonCode
}

// connectAck is connect returning the whole CONNACK.
func (c *rawClient) connectAck(dev, clientID string, token []byte) packets.Packet {
	c.t.Helper()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            true,
			Keepalive:        30,
			ClientIdentifier: clientID,
			UsernameFlag:     dev != "",
			Username:         []byte(dev),
			PasswordFlag:     len(token) > 0,
			Password:         token,
		},
	}
	c.send(pk)
	ack := c.mustRead("CONNACK")
	if ack.FixedHeader.Type != packets.Connack {
		c.t.Fatalf("got packet type %d; want a CONNACK", ack.FixedHeader.Type)
	}
	return ack
}

// mustConnect connects as dev with a valid token.
func (c *rawClient) mustConnect(e *env, dev string) {
	c.t.Helper()
	if code := c.connect(dev, dev, e.auth.token(dev)); code != 0 {
		c.t.Fatalf("CONNACK for %s = 0x%02x; want 0", dev, code)
	}
}

func (c *rawClient) publish(topic string, qos byte, id uint16, payload string) {
	c.t.Helper()
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		PacketID:    id,
		Payload:     []byte(payload),
	})
}

func (c *rawClient) subscribe(id uint16, filters ...string) []byte {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	c.send(pk)
	ack := c.mustRead("SUBACK")
	if ack.FixedHeader.Type != packets.Suback || ack.PacketID != id {
		c.t.Fatalf("got packet type %d id %d; want SUBACK %d", ack.FixedHeader.Type, ack.PacketID, id)
	}
	return ack.ReasonCodes
}
