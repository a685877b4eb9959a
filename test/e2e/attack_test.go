package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// attempts counts the attacks of a scenario and which were accepted.
type attempts struct {
	t        *testing.T
	tried    int
	accepted []string
}

func (a *attempts) refused(what string, ok bool, detail string) {
	a.tried++
	if ok {
		a.t.Logf("refused: %s (%s)", what, detail)
		return
	}
	a.accepted = append(a.accepted, what)
	a.t.Errorf("ACCEPTED: %s (%s)", what, detail)
}

// flipLast changes the last byte of a COSE_Sign1 (inside its signature).
func flipLast(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 0x01
	return c
}

func (n *Net) postReading(ctx context.Context, i int, raw []byte) (int, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.Nodes[i].API+"/v1/readings", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/cose")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("POST /v1/readings: %v", err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, strings.Join(strings.Fields(b.String()), " ")
}

// TestImpersonationReplay tries forged signatures, a revoked device,
// another device's key and token, and replays of readings and txs over
// HTTP, MQTT and CoAP, and of messages on the mesh (meshAttacks), against
// a real network; none may be accepted, while the legitimate controls are.
func TestImpersonationReplay(t *testing.T) {
	long(t)
	start := time.Now()
	n := StartNet(t, Manifest{Name: "impersonation", Validators: 4, Gateways: []int{0}, Orgs: []string{"acme"},
		Devices: []Device{{"sensor-1", "acme", "sensor"}, {"sensor-2", "acme", "sensor"}, {"sensor-r", "acme", "sensor"}, {"lamp", "acme", "lamp"}},
		Mesh:    true})
	r := result{Scenario: "impersonation-replay", Invariant: "0 forged/revoked/replayed inputs accepted"}
	a := &attempts{t: t}
	defer func() { report(t, start, r) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	s1, s2, sr := n.Key("sensor-1"), n.Key("sensor-2"), n.Key("sensor-r")
	admin := n.Key("acme-admin")
	stranger, _ := identity.GenerateKey(identity.Ed25519)
	// sensor-r sends one reading while active, then is revoked (CLI).
	sign := func(k *identity.Key, as string, seq uint64, v float64) []byte {
		raw, err := reading.Sign(k, as, reading.Reading{Seq: seq, Time: time.Now(), ContentType: "count", Value: &v})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	revokedToken := n.deviceToken(sr, sr.ID())
	if code, body := n.postReading(ctx, 0, sign(sr, sr.ID(), 1, 1)); code != http.StatusAccepted {
		t.Fatalf("control: sensor-r's reading refused before its revocation: %d %s", code, body)
	}
	// A reading proves only while its signer was active at the anchor's
	// height: revoke once the gateway anchored it.
	if _, err := n.Nodes[0].Client.WaitReadingProof(ctx, 0, 200*time.Millisecond); err != nil {
		t.Fatalf("sensor-r's reading was never anchored: %v", err)
	}
	n.MustCLI("device", "revoke", "sensor-r", "--key", "acme-admin", "--reason", "stolen")
	want := map[string]map[uint64]bool{sr.ID(): {1: true}, s1.ID(): {}, s2.ID(): {}}

	// --- readings over HTTP
	r1 := sign(s1, s1.ID(), 1, 21.5)
	if code, body := n.postReading(ctx, 0, r1); code != http.StatusAccepted {
		t.Fatalf("control: a good reading was refused: %d %s", code, body)
	}
	want[s1.ID()][1] = true
	httpTry := func(what string, raw []byte) {
		code, body := n.postReading(ctx, 0, raw)
		a.refused("HTTP "+what, code >= 300, fmt.Sprintf("HTTP %d %s", code, body))
	}
	httpTry("reading with a forged signature", flipLast(sign(s1, s1.ID(), 2, 99)))
	httpTry("reading of an unregistered key", sign(stranger, stranger.ID(), 1, 99))
	httpTry("sensor-2's key signing as sensor-1", sign(s2, s1.ID(), 3, 99))
	httpTry("reading of a revoked device", sign(sr, sr.ID(), 2, 99))
	r5 := sign(s1, s1.ID(), 5, 22)
	httpTry("older seq replayed with new content", func() []byte {
		if code, body := n.postReading(ctx, 0, r5); code != http.StatusAccepted {
			t.Fatalf("control: a good reading was refused: %d %s", code, body)
		}
		want[s1.ID()][5] = true
		return sign(s1, s1.ID(), 4, 99)
	}())
	// An exact resend may be acknowledged (a device that lost the answer
	// resends); it must not be stored twice: checked in the log below.
	code, body := n.postReading(ctx, 0, r1)
	a.refused("HTTP exact resend of an older stored reading", code >= 300, fmt.Sprintf("HTTP %d %s", code, body))
	code, body = n.postReading(ctx, 0, r5)
	a.tried++
	t.Logf("exact resend of the last stored reading over HTTP: HTTP %d %s (must not be stored twice)", code, body)
	t.Run("HTTPDuplicateAcknowledged", func(t *testing.T) {
		// docs/security.md: an exact resend of the last stored envelope is
		// acknowledged as a duplicate (a device that lost the answer
		// resends), over HTTP as over MQTT (PUBACK) and CoAP (2.04).
		if code >= 300 {
			t.Errorf("an exact resend of the last stored reading: HTTP %d %s; want it acknowledged as a duplicate", code, body)
		}
	})

	// --- MQTT
	mqttTry := func(what, user, password string) {
		c, err := mqttConnect(n.Nodes[0].MQTT, user, password)
		if c != nil {
			c.Disconnect(0)
		}
		a.refused("MQTT connect with "+what, err != nil, fmt.Sprint(err))
	}
	mqttTry("sensor-2's valid token as sensor-1", s1.ID(), n.deviceToken(s2, s2.ID()))
	mqttTry("a token for sensor-1 signed by sensor-2's key", s1.ID(), n.deviceToken(s2, s1.ID()))
	mqttTry("a forged token (signature changed)", s1.ID(), func() string {
		tok, _ := identity.NewCWT(s1, s1.ID(), n.ChainID, time.Now(), time.Hour)
		return identity.EncodeCWTPassword(flipLast(tok))
	}())
	mqttTry("a revoked device's token", sr.ID(), revokedToken)
	mqttTry("an unregistered key's token", stranger.ID(), n.deviceToken(stranger, stranger.ID()))
	mqttTry("a token of another chain", s1.ID(), func() string {
		tok, _ := identity.NewCWT(s1, s1.ID(), "other-chain", time.Now(), time.Hour)
		return identity.EncodeCWTPassword(tok)
	}())

	// A legitimate sensor-2 session that misbehaves: the gateway may
	// acknowledge or drop these publishes, but must store none.
	c, err := mqttConnect(n.Nodes[0].MQTT, s2.ID(), n.deviceToken(s2, s2.ID()))
	if err != nil {
		t.Fatalf("control: sensor-2 cannot connect: %v", err)
	}
	pub := func(topic string, raw []byte) {
		tok := c.Publish(topic, 1, false, raw)
		tok.WaitTimeout(5 * time.Second)
		a.tried++
	}
	own := gateway.ReadingsTopic(s2.ID())
	good := sign(s2, s2.ID(), 1, 1)
	pub(own, good)
	pub(own, sign(s2, s2.ID(), 2, 2))
	want[s2.ID()][1], want[s2.ID()][2] = true, true
	pub(own, good)                                               // exact replay
	pub(own, sign(s2, s2.ID(), 1, 77))                           // old seq, new content
	pub(own, r1)                                                 // sensor-1's reading replayed on sensor-2's topic
	pub(gateway.ReadingsTopic(s1.ID()), sign(s2, s1.ID(), 9, 9)) // another device's topic, signed as it by the wrong key
	pub(gateway.ReadingsTopic(s1.ID()), sign(s1, s1.ID(), 8, 8)) // another device's topic, its real (stolen) reading
	pub(own, flipLast(sign(s2, s2.ID(), 3, 3)))                  // forged signature
	c.Disconnect(250)

	// --- CoAP, and the mesh (meshattack_test.go)
	n.coapAttacks(ctx, a, sign, want, s1, s2, sr, stranger)
	n.meshAttacks(ctx, a, s1, s2, sr, stranger, n.Key("lamp"))

	// --- transactions over HTTP
	cl := n.Nodes[1].Client
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nonce, _ := cl.NextNonce(ctx, admin.ID())
	okTx, _ := record.NewTx(admin, admin.ID(), n.ChainID, nonce, st.Height+100, &record.DeviceUpdate{Device: s1.ID(), Labels: map[string]string{"room": "1"}})
	if res, err := cl.Submit(ctx, okTx, true); err != nil || res.Code != 0 {
		t.Fatalf("control: the admin's tx was refused: %v", err)
	}
	txTry := func(what string, i int, raw []byte) {
		res, err := n.Nodes[i].Client.Submit(ctx, raw, true)
		detail := fmt.Sprint(err)
		if err == nil {
			detail = fmt.Sprintf("code %d %s", res.Code, res.Log)
		}
		a.refused("tx "+what, err != nil || res.Code != 0, detail)
	}
	newTx := func(k *identity.Key, signer string, nonce uint64, m record.Msg) []byte {
		raw, err := record.NewTx(k, signer, n.ChainID, nonce, st.Height+100, m)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	txTry("replayed (same bytes, same node)", 1, okTx)
	txTry("replayed (same bytes, another node)", 2, okTx)
	txTry("with a forged signature", 1, flipLast(newTx(admin, admin.ID(), nonce+1, &record.DeviceStatus{Device: s1.ID(), To: record.StatusSuspended})))
	txTry("signed by a stranger as the admin", 1, newTx(stranger, admin.ID(), nonce+1, &record.DeviceStatus{Device: s1.ID(), To: record.StatusSuspended}))
	txTry("signed by sensor-2 as sensor-1", 1, newTx(s2, s1.ID(), 1, &record.OrgCreate{ID: "by-s1"}))
	txTry("signed by a revoked device", 1, newTx(sr, sr.ID(), 1, &record.OrgCreate{ID: "by-revoked"}))
	txTry("for another chain", 1, func() []byte {
		raw, _ := record.NewTx(admin, admin.ID(), "other-chain", nonce+1, st.Height+100, &record.DeviceStatus{Device: s1.ID(), To: record.StatusSuspended})
		return raw
	}())
	txTry("expired", 1, func() []byte {
		raw, _ := record.NewTx(admin, admin.ID(), n.ChainID, nonce+1, 1, &record.DeviceStatus{Device: s1.ID(), To: record.StatusSuspended})
		return raw
	}())

	// The state: sensor-1 still active with no other change.
	var rec struct {
		Record record.Device `json:"record"`
	}
	if err := cl.Get(ctx, "/v1/devices/"+s1.ID(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Record.Status != record.StatusActive {
		t.Errorf("sensor-1 is %q after the attacks", rec.Record.Status)
	}
	for _, org := range []string{"by-s1", "by-revoked"} {
		var o map[string]any
		if err := cl.Get(ctx, "/v1/orgs/"+org, &o); err == nil {
			a.accepted = append(a.accepted, "org "+org)
			t.Errorf("organisation %s exists: a forged tx was executed", org)
		}
	}

	// The log holds exactly the legitimate readings, each once.
	stored, bad := n.storedReadings(ctx, 0, 2)
	for _, b := range bad {
		t.Errorf("log entry %d (%s) does not verify: %v", b.Index, b.Device, b.Err)
	}
	for dev, seqs := range stored {
		for seq, times := range seqs {
			if !want[dev][seq] || times != 1 {
				a.accepted = append(a.accepted, fmt.Sprintf("reading %s/%d", dev, seq))
				t.Errorf("the log holds reading %s seq %d %d times; the legitimate ones are %v", dev, seq, times, want[dev])
			}
		}
	}
	for dev, seqs := range want {
		for seq := range seqs {
			if stored[dev][seq] != 1 {
				t.Errorf("legitimate reading %s seq %d is stored %d times", dev, seq, stored[dev][seq])
			}
		}
	}
	r.Load = "controls: 7 readings, 3 msgs, 2 txs"
	r.Faults = "attacker with stolen/forged creds"
	r.Inputs = fmt.Sprintf("%d attacks (HTTP/MQTT/CoAP/mesh/tx)", a.tried)
	t.Logf("impersonation and replay: %d attacks tried, %d accepted", a.tried, len(a.accepted))
}
