package mqtt

import (
	"encoding/base64"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingnet/thingnet/gateway/edge"
	"github.com/thingnet/thingnet/internal/testutil"
)

// TestConnect checks every CONNECT outcome with the exact CONNACK code, in
// MQTT 3.1.1 and 5.
func TestConnect(t *testing.T) {
	e := startBroker(t, nil)
	e.auth.setStatus("did:key:z6MkSuspended", "suspended")
	valid := e.auth.token(devA)
	tests := []struct {
		name         string
		user, client string
		token        []byte
		v5, v3       byte
		authCalled   bool // whether the Authenticator may be asked at all
	}{
		{"valid", devA, devA, valid, 0x00, 0x00, true},
		{"empty client id", devA, "", valid, 0x00, 0x00, true},
		{"base64url token", devA, devA, []byte(base64.RawURLEncoding.EncodeToString(valid)), 0x00, 0x00, true},
		{"padded base64 token", devA, devA, []byte(base64.URLEncoding.EncodeToString(valid) + "="), 0x86, 0x04, false},
		{"forged token", devA, devA, fakeToken([]byte("not the device key"), devA, time.Now().Add(time.Hour)), 0x86, 0x04, true},
		{"expired token", devA, devA, fakeToken(e.auth.secret, devA, time.Now().Add(-time.Minute)), 0x86, 0x04, true},
		{"other device's token", devA, devA, e.auth.token(devB), 0x86, 0x04, true},
		{"not a token", devA, devA, []byte("hunter2 !"), 0x86, 0x04, false},
		{"no password", devA, devA, nil, 0x86, 0x04, false},
		{"no username", "", "", valid, 0x86, 0x04, false},
		{"username with a slash", "did:key:z6Mk/evil", "", valid, 0x86, 0x04, false},
		{"revoked device", devRevoked, devRevoked, e.auth.token(devRevoked), 0x87, 0x05, true},
		{"suspended device", "did:key:z6MkSuspended", "", e.auth.token("did:key:z6MkSuspended"), 0x87, 0x05, true},
		{"unknown device", devUnknown, devUnknown, e.auth.token(devUnknown), 0x87, 0x05, true},
		{"another client id", devA, "my-laptop", valid, 0x85, 0x02, false},
		{"another device's client id", devA, devB, valid, 0x85, 0x02, false},
	}
	for _, tt := range tests {
		for _, version := range []byte{4, 5} {
			want := map[byte]byte{4: tt.v3, 5: tt.v5}[version]
			t.Run(fmt.Sprintf("%s/v%d", tt.name, version), func(t *testing.T) {
				calls := e.auth.callCount()
				c := dialRaw(t, e.addr, version)
				ack := c.connectAck(tt.user, tt.client, tt.token)
				if ack.ReasonCode != want {
					t.Fatalf("CONNACK code = 0x%02x (%q); want 0x%02x", ack.ReasonCode, ack.Properties.ReasonString, want)
				}
				if !tt.authCalled && e.auth.callCount() != calls {
					t.Errorf("the Authenticator was asked; a cheap check should have refused first")
				}
				if want != 0 {
					c.expectClosed("after a refusing CONNACK")
					return
				}
				if version == 5 && tt.client == "" && ack.Properties.AssignedClientID != devA {
					t.Errorf("assigned client id = %q; want the device id %q", ack.Properties.AssignedClientID, devA)
				}
				// The session works: a reading is stored and acknowledged.
				c.publish(ReadingsTopic(devA), 1, 9, "reading of "+tt.name)
				if ack := c.mustRead("PUBACK"); ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != 0 {
					t.Fatalf("got packet type %d reason 0x%02x; want a PUBACK success", ack.FixedHeader.Type, ack.ReasonCode)
				}
			})
		}
	}
	st := e.b.Stats()
	if st.ConnectionsRefused[RefusedBadCredentials] != 16 || st.ConnectionsRefused[RefusedNotAuthorized] != 6 ||
		st.ConnectionsRefused[RefusedClientID] != 4 || st.ConnectionsAccepted != 6 {
		t.Errorf("Stats = %+v; want 6 accepted, refused 16 bad credentials, 6 not authorized, 4 client id", st)
	}
}

// TestConnectRateLimits checks that the source address and then the device
// id are charged before any signature work, and the refusal's codes.
func TestConnectRateLimits(t *testing.T) {
	e := startBroker(t, nil)
	e.limits.setConnects("addr:127.0.0.1", 2)
	for i, version := range []byte{5, 4} {
		c := dialRaw(t, e.addr, version)
		if code := c.connect(devA, devA, e.auth.token(devA)); code != 0 {
			t.Fatalf("connection %d: CONNACK = 0x%02x; want 0", i, code)
		}
	}
	calls := e.auth.callCount()
	for version, want := range map[byte]byte{5: 0x97, 4: 0x05} {
		c := dialRaw(t, e.addr, version)
		if code := c.connect(devA, devA, e.auth.token(devA)); code != want {
			t.Errorf("v%d over the source's budget: CONNACK = 0x%02x; want 0x%02x", version, code, want)
		}
		c.expectClosed("rate-limited")
	}
	e.limits.setConnects("addr:127.0.0.1", 100)
	e.limits.setConnects(edge.DeviceKey(devB), 0)
	for version, want := range map[byte]byte{5: 0x97, 4: 0x05} {
		c := dialRaw(t, e.addr, version)
		if code := c.connect(devB, devB, e.auth.token(devB)); code != want {
			t.Errorf("v%d over the device's budget: CONNACK = 0x%02x; want 0x%02x", version, code, want)
		}
	}
	if got := e.auth.callCount(); got != calls {
		t.Errorf("the Authenticator was asked %d times for rate-limited connections; want 0", got-calls)
	}
	asked := e.limits.askedKeys()
	if want := []string{"addr:127.0.0.1", edge.DeviceKey(devA)}; !slices.Equal(asked[:2], want) {
		t.Errorf("AllowConnect asked %q first; want %q (source, then device)", asked[:2], want)
	}
	st := e.b.Stats()
	if st.RateLimited[LimitConnectSource] != 2 || st.RateLimited[LimitConnectDevice] != 2 || st.ConnectionsRefused[RefusedRateLimited] != 4 {
		t.Errorf("Stats = %+v; want 2 source and 2 device connect limits, 4 refusals", st)
	}
}

// TestNoKickingOthers checks that a device cannot take over another's
// session, while a device's new connection does replace its own.
func TestNoKickingOthers(t *testing.T) {
	e := startBroker(t, nil)
	b := dialRaw(t, e.addr, 5)
	b.mustConnect(e, devB)

	a := dialRaw(t, e.addr, 4)
	if code := a.connect(devA, devB, e.auth.token(devA)); code != 0x02 {
		t.Fatalf("CONNACK for A using B's client id = 0x%02x; want 0x02", code)
	}
	b.publish(ReadingsTopic(devB), 1, 1, "still here")
	if ack := b.mustRead("PUBACK"); ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != 0 {
		t.Fatalf("B after A's attempt: got packet type %d reason 0x%02x; want PUBACK success", ack.FixedHeader.Type, ack.ReasonCode)
	}

	b2 := dialRaw(t, e.addr, 5)
	b2.mustConnect(e, devB)
	if pk := b.mustRead("DISCONNECT"); pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrSessionTakenOver.Code {
		t.Fatalf("B's first connection got packet type %d reason 0x%02x; want DISCONNECT session taken over", pk.FixedHeader.Type, pk.ReasonCode)
	}
}

// TestDisconnectDevice checks Broker.Disconnect, used when the ledger
// suspends or revokes a connected device.
func TestDisconnectDevice(t *testing.T) {
	e := startBroker(t, nil)
	c5 := dialRaw(t, e.addr, 5)
	c5.mustConnect(e, devA)
	c3 := dialRaw(t, e.addr, 4)
	c3.mustConnect(e, devB)
	if !e.b.Disconnect(devA) || !e.b.Disconnect(devB) {
		t.Fatal("Disconnect of a connected device = false")
	}
	if pk := c5.mustRead("DISCONNECT"); pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrAdministrativeAction.Code {
		t.Errorf("v5 client got packet type %d reason 0x%02x; want DISCONNECT 0x98", pk.FixedHeader.Type, pk.ReasonCode)
	}
	c5.expectClosed("after DISCONNECT")
	c3.expectClosed("v3 client disconnected")
	if e.b.Disconnect(devUnknown) {
		t.Error("Disconnect of a device never connected = true")
	}
}

// TestConnectWithoutCONNECT checks that a connection that never sends its
// CONNECT is closed after ConnectTimeout.
func TestConnectWithoutCONNECT(t *testing.T) {
	e := startBroker(t, func(c *Config) { c.ConnectTimeout = 200 * time.Millisecond })
	c := dialRaw(t, e.addr, 4)
	start := time.Now()
	c.expectClosed("silent connection")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent connection closed after %s; want about 200ms", d)
	}
}

// TestMaxClients checks the refusal beyond MaxClients.
func TestMaxClients(t *testing.T) {
	e := startBroker(t, func(c *Config) { c.MaxClients = 1 })
	a := dialRaw(t, e.addr, 5)
	a.mustConnect(e, devA)
	for version, want := range map[byte]byte{5: 0x89, 4: 0x03} {
		b := dialRaw(t, e.addr, version)
		if code := b.connect(devB, devB, e.auth.token(devB)); code != want {
			t.Errorf("v%d CONNACK beyond MaxClients = 0x%02x; want 0x%02x", version, code, want)
		}
	}
	testutil.WaitFor(t, testutil.Context(t, 5*time.Second), "server_busy counted", func() bool { return e.b.Stats().ConnectionsRefused[RefusedServerBusy] == 2 })
}
