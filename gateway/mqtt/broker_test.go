package mqtt

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingnet/thingnet/internal/testutil"
)

func TestStartConfigErrors(t *testing.T) {
	full := func() Config {
		return Config{Listen: "127.0.0.1:0", Auth: newFakeAuth(), Ingest: newFakeIngest(), ACL: &fakeACL{}, Limits: newFakeLimiter()}
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no Auth", func(c *Config) { c.Auth = nil }, "Config.Auth is required"},
		{"no Ingest", func(c *Config) { c.Ingest = nil }, "Config.Ingest is required"},
		{"no ACL", func(c *Config) { c.ACL = nil }, "Config.ACL is required"},
		{"no Limits", func(c *Config) { c.Limits = nil }, "Config.Limits is required"},
		{"negative MaxPacket", func(c *Config) { c.MaxPacket = -1 }, "must not be negative"},
		{"huge MaxPacket", func(c *Config) { c.MaxPacket = 1 << 30 }, "above MQTT's limit"},
		{"huge keepalive", func(c *Config) { c.MaxKeepalive = 24 * time.Hour }, "above MQTT's limit"},
	}
	for _, tt := range tests {
		c := full()
		tt.edit(&c)
		_, err := Start(c)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Start = %v; want ErrConfig saying %q", tt.name, err, tt.want)
		}
	}
	c := full()
	c.Listen = "256.0.0.1:1883"
	if _, err := Start(c); err == nil || !strings.Contains(err.Error(), "listen on 256.0.0.1:1883") {
		t.Errorf("Start on a bad address = %v; want an error naming it", err)
	}
}

// blockingAuth blocks until its context ends.
type blockingAuth struct{ entered chan struct{} }

func (a blockingAuth) Authenticate(ctx context.Context, _ string, _ []byte) error {
	a.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// TestCloseLeaves checks that Close ends every connection — one that never
// sent a CONNECT, one in Authenticate, one in Ingest, idle sessions — within
// its bound, is idempotent, and leaves no goroutine behind.
func TestCloseLeaves(t *testing.T) {
	base, _ := testutil.Goroutines()
	auth := newFakeAuth()
	ingest := newFakeIngest()
	entered := make(chan struct{}, 1)
	b, err := Start(Config{
		Listen: "127.0.0.1:0", Logger: testLogger(),
		Auth: authByDevice{devUnknown: blockingAuth{entered}, "": auth}, Ingest: ingest, ACL: &fakeACL{}, Limits: newFakeLimiter(),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{b: b, addr: b.Addr(), auth: auth, ingest: ingest}

	silent := dialRaw(t, e.addr, 4)
	authing := dialRaw(t, e.addr, 5)
	authing.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, UsernameFlag: true, Username: []byte(devUnknown),
		PasswordFlag: true, Password: auth.token(devUnknown),
	}})
	<-entered
	ingesting := dialRaw(t, e.addr, 5)
	ingesting.mustConnect(e, devA)
	ingesting.publish(ReadingsTopic(devA), 1, 1, "block until close")
	<-ingest.entered
	idle3 := dialRaw(t, e.addr, 4)
	idle3.mustConnect(e, devB)
	auth.setStatus("did:key:z6MkPaho", "active")
	p := mustDialPaho(t, e, "did:key:z6MkPaho")

	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %s", d)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if pk, err := ingesting.read(5 * time.Second); err == nil && pk.FixedHeader.Type == packets.Puback && pk.ReasonCode == 0 {
		t.Error("the reading in Ingest at Close was acknowledged as stored")
	}
	// The CONNECT in Authenticate is refused as "server unavailable", or its
	// connection closed first.
	if pk, err := authing.read(5 * time.Second); err == nil && (pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0x88) {
		t.Errorf("CONNECT in Authenticate at Close: got packet type %d reason 0x%02x; want CONNACK 0x88 server unavailable", pk.FixedHeader.Type, pk.ReasonCode)
	}
	for _, c := range []*rawClient{silent, authing, ingesting, idle3} {
		c.expectClosed("after Close")
	}
	if ingest.has(devA, "block until close") {
		t.Error("the reading in Ingest at Close was stored")
	}
	p.Disconnect(0)
	testutil.CheckGoroutines(t, base)
}

// authByDevice sends each device to its own Authenticator ("" for the rest).
type authByDevice map[string]Authenticator

func (a authByDevice) Authenticate(ctx context.Context, dev string, token []byte) error {
	if x, ok := a[dev]; ok {
		return x.Authenticate(ctx, dev, token)
	}
	return a[""].Authenticate(ctx, dev, token)
}

// TestTLS checks MQTT over TLS.
func TestTLS(t *testing.T) {
	cert := selfSigned(t)
	e := startBroker(t, func(c *Config) { c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}} })
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	conn, err := tls.Dial("tcp", e.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), version: 5}
	c.mustConnect(e, devA)
	c.publish(ReadingsTopic(devA), 1, 1, "over tls")
	if ack := c.mustRead("PUBACK"); ack.ReasonCode != 0 || !e.ingest.has(devA, "over tls") {
		t.Fatalf("PUBACK 0x%02x; want the reading stored and acknowledged", ack.ReasonCode)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func TestDecodeToken(t *testing.T) {
	cwt := []byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xff, 0x00}
	tests := []struct {
		password string
		want     []byte
	}{
		{string(cwt), cwt},
		{"0oRDoQEn_wA", cwt},
		{"0oRDoQEn_wA=", nil},  // padded
		{"0oRDoQEn/wA", nil},   // standard alphabet
		{"0oRDoQEn_wB", nil},   // non-zero padding bits: a second text form
		{"0oRDoQEn\n_wA", nil}, // line break
		{"", nil},
		{"not base64!", nil},
		{strings.Repeat("A", maxPassword+1), nil},
	}
	for _, tt := range tests {
		got, err := decodeToken([]byte(tt.password))
		if string(got) != string(tt.want) || (err != nil) != (tt.want == nil) {
			t.Errorf("decodeToken(%q) = %x, %v; want %x", tt.password, got, err, tt.want)
		}
	}
}

func TestCheckDeviceID(t *testing.T) {
	for id, ok := range map[string]bool{
		devA: true, "": false, "a/b": false, "a+": false, "#": false, "a\x00": false, "\xff": false,
		strings.Repeat("x", maxDeviceID): true, strings.Repeat("x", maxDeviceID+1): false,
	} {
		if err := checkDeviceID(id); (err == nil) != ok {
			t.Errorf("checkDeviceID(%.20q) = %v; want ok=%v", id, err, ok)
		}
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("añb", 2); got != "a..." {
		t.Errorf("truncate cut a character: %q", got)
	}
	if got := truncate("a\xffb", 10); got != "a?b" {
		t.Errorf("truncate kept invalid UTF-8: %q", got)
	}
}

// TestCloseWhileClientsLeave closes brokers while their clients are leaving
// (mochi's own way of disconnecting clients at close can deadlock then).
func TestCloseWhileClientsLeave(t *testing.T) {
	for range 10 {
		e := startBroker(t, nil)
		var clients []*rawClient
		for i := range 20 {
			c := dialRaw(t, e.addr, byte(4+i%2))
			c.mustConnect(e, fmt.Sprintf("did:key:z6MkChurn%d", i))
			clients = append(clients, c)
		}
		for _, c := range clients {
			_ = c.conn.Close()
		}
		if err := e.b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
