package gateway

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
)

// TestMQTTEndToEnd: a device connects to the gateway's broker with a CWT,
// publishes readings at QoS 1, and every acknowledged reading is in the log
// and, once anchored, provable on the ledger.
func TestMQTTEndToEnd(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, time.Minute)
	b, err := tn.gw.StartMQTT(MQTTConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dial := func(dev *identity.Key, token []byte) (paho.Client, error) {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetProtocolVersion(4).
			SetClientID(dev.ID()).SetUsername(dev.ID()).SetPassword(identity.EncodeCWTPassword(token)).
			SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
		tok := c.Connect()
		tok.WaitTimeout(10 * time.Second)
		return c, tok.Error()
	}
	now := time.Now()
	forged, _ := identity.NewCWT(testutil.Key(t, identity.Ed25519), tn.sensor.ID(), "gw-test", now, time.Hour)
	if c, err := dial(tn.sensor, forged); err == nil {
		c.Disconnect(0)
		t.Fatal("forged token accepted")
	}
	token, _ := identity.NewCWT(tn.sensor, tn.sensor.ID(), "gw-test", now, time.Hour)
	c, err := dial(tn.sensor, token)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Disconnect(100)
	before := tn.gw.Log().Size()
	for seq := uint64(1); seq <= 5; seq++ {
		raw, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(seq, float64(seq)))
		tok := c.Publish(ReadingsTopic(tn.sensor.ID()), 1, false, raw)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: no PUBACK (%v)", seq, tok.Error())
		}
	}
	// Acknowledged means stored: all five are in the log now.
	if got := tn.gw.Log().Size() - before; got != 5 {
		t.Fatalf("log grew by %d after 5 acknowledged readings; want 5", got)
	}
	p := tn.proof(t, before+4)
	if _, err := tn.client.VerifyReading(ctx, "gw-test", p); err != nil {
		t.Fatalf("VerifyReading: %v", err)
	}
}
