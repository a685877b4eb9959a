package gateway

import (
	"bytes"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/gateway/coap"
	"github.com/thingnet/thingnet/gateway/edge"
	"github.com/thingnet/thingnet/gateway/mqtt"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/reading"
)

// TestSourceLimits: many devices behind one address (here two, on
// loopback) pass a raised per-source limit, while each device stays bound
// by the per-device limit; with no SourceLimits the address gets the
// device limits, as before.
func TestSourceLimits(t *testing.T) {
	tn := startTestNet(t)
	slow := func(burst int) ratelimit.Limits {
		l := ratelimit.DefaultLimits()
		l.MsgsPerSec, l.Burst = 0.001, burst // no refill during the test
		return l
	}
	use := func(name string, c Config) {
		c.Dir, c.Key = filepath.Join(tn.dir, name), tn.gwKey
		gw, err := New(c, NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gw.Close() })
		tn.gw = gw // tn's routes forward to it
	}
	sensorSeq, weakSeq := uint64(100), uint64(100)
	sensor := func() error {
		sensorSeq++
		raw, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(sensorSeq, 20))
		_, err := tn.post(t, raw)
		return err
	}
	weak := func() error {
		weakSeq++
		raw, _ := reading.SignAttested(tn.gwKey, tn.gwKey.ID(), tn.weak.ID(), temp(weakSeq, 5))
		_, err := tn.post(t, raw)
		return err
	}
	status := func(err error) int {
		var e *client.Error
		if errors.As(err, &e) {
			return e.Status
		}
		return 0
	}

	use("raised", Config{Limits: slow(3), SourceLimits: slow(100)})
	for i := range 3 {
		if err := sensor(); err != nil {
			t.Fatalf("sensor envelope %d within its burst: %v", i+1, err)
		}
	}
	err := sensor()
	if err == nil || status(err) == http.StatusTooManyRequests || !strings.Contains(err.Error(), "device") {
		t.Fatalf("sensor's 4th envelope: %v; want a refusal by the per-device limit", err)
	}
	for i := range 3 { // the same address, another device: the address has room
		if err := weak(); err != nil {
			t.Fatalf("second device's envelope %d from the same address: %v", i+1, err)
		}
	}

	use("default", Config{Limits: slow(3)})
	for range 3 {
		if err := sensor(); err != nil {
			t.Fatal(err)
		}
	}
	if err := weak(); status(err) != http.StatusTooManyRequests || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("with SourceLimits unset, a second device from a spent address: %v; want 429 for the address", err)
	}

	bad := slow(3)
	bad.MsgsPerSec = 0
	if _, err := New(Config{Dir: filepath.Join(tn.dir, "bad"), Key: tn.gwKey, SourceLimits: bad},
		NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()}); err == nil || !strings.Contains(err.Error(), "per-source") {
		t.Fatalf("invalid SourceLimits: %v", err)
	}
}

// TestOneDeviceKeyAcrossTransports: a device is limited under one key
// (edge.DeviceKey) whichever transport it uses, and each envelope is
// charged to it once. With a burst of 4 envelopes and no refill, two MQTT
// publishes, one CoAP POST and one HTTP POST all pass (an MQTT publish
// charged twice, by the broker and by Ingest, would leave room for one),
// and then the device is refused on every transport, each refusal counted
// under the same key.
func TestOneDeviceKeyAcrossTransports(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, time.Minute)
	limits := func(burst int) ratelimit.Limits {
		l := ratelimit.DefaultLimits()
		l.MsgsPerSec, l.Burst = 0.001, burst // no refill during the test
		return l
	}
	gw := tn.swapGateway(t, "one-key", Config{Limits: limits(4), SourceLimits: limits(100)},
		NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
	tn.gw = gw // tn's HTTP routes forward to it
	b, err := gw.StartMQTT(MQTTConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cs, err := gw.StartCoAP(CoAPConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	dev := tn.sensor
	seq := uint64(0)
	next := func() []byte {
		seq++
		raw, err := reading.Sign(dev, dev.ID(), temp(seq, float64(seq)))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	token, _ := identity.NewCWT(dev, dev.ID(), "gw-test", time.Now(), time.Hour)
	mc := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetProtocolVersion(4).
		SetClientID(dev.ID()).SetUsername(dev.ID()).SetPassword(identity.EncodeCWTPassword(token)).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := mc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect: %v", tok.Error())
	}
	defer mc.Disconnect(0)
	publish := func() paho.Token { return mc.Publish(ReadingsTopic(dev.ID()), 1, false, next()) }
	cc, err := udp.Dial(cs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	coapPost := func() codes.Code {
		resp, err := cc.Post(ctx, coap.PathShort, message.AppCoseSign1, bytes.NewReader(next()))
		if err != nil {
			t.Fatalf("CoAP POST: %v", err)
		}
		defer cc.ReleaseMessage(resp)
		return resp.Code()
	}

	for i := range 2 {
		if tok := publish(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("MQTT publish %d within the burst: no PUBACK (%v)", i+1, tok.Error())
		}
	}
	if got := coapPost(); got != codes.Changed {
		t.Fatalf("CoAP POST within the burst = %v; want %v", got, codes.Changed)
	}
	if _, err := tn.post(t, next()); err != nil {
		t.Fatalf("HTTP POST within the burst: %v", err)
	}
	if st := gw.Stats(); st.Accepted != 4 || st.Limited != 0 {
		t.Fatalf("after the burst: %d stored, %d limited; want 4, 0", st.Accepted, st.Limited)
	}

	// The burst is spent on every transport.
	if _, err := tn.post(t, next()); err == nil || !strings.Contains(err.Error(), "device") {
		t.Fatalf("HTTP POST beyond the burst: %v; want a refusal by the per-device limit", err)
	}
	if got := coapPost(); got != codes.BadRequest {
		t.Fatalf("CoAP POST beyond the burst = %v; want %v", got, codes.BadRequest)
	}
	publish() // MQTT 3.1.1 has no negative PUBACK: the broker closes the connection
	for b.Stats().RateLimited[mqtt.LimitMessage] != 1 {
		select {
		case <-ctx.Done():
			t.Fatalf("MQTT publish beyond the burst was not refused: %+v", b.Stats())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if st := gw.Stats(); st.Accepted != 4 || st.Limited != 3 {
		t.Fatalf("after the refusals: %d stored, %d limited; want 4, 3", st.Accepted, st.Limited)
	}
	off := gw.limiter.Offenders(1, time.Minute)
	if len(off) != 1 || off[0].Key != edge.DeviceKey(dev.ID()) || off[0].Violations != 3 {
		t.Fatalf("limiter offenders = %+v; want only %s, with 3 violations (one per transport)", off, edge.DeviceKey(dev.ID()))
	}
}
