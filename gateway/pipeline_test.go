package gateway

import (
	"errors"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
)

// TestSubmitPipelined: envelopes submitted one after the other without
// waiting are all stored, in the order they came (batches verified on all
// cores, committed in order); and once stored, a resend of any of them,
// not only the last, is a duplicate, while another envelope with a stored
// sequence number stays a replay.
func TestSubmitPipelined(t *testing.T) {
	tn := startTestNet(t)
	gw := tn.swapGateway(t, "pipelined", Config{Limits: wideLimits}, NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
	ctx := testutil.Context(t, time.Minute)
	dev := tn.sensor.ID()
	const n = 600
	raws := make([][]byte, n+1)
	answers := make([]<-chan error, n+1)
	for seq := uint64(1); seq <= n; seq++ {
		raws[seq], _ = reading.Sign(tn.sensor, dev, temp(seq, float64(seq)))
		answers[seq] = gw.Submit(ctx, dev, raws[seq], "127.0.0.1")
	}
	for seq := 1; seq <= n; seq++ {
		if err := <-answers[seq]; err != nil {
			t.Fatalf("Submit seq %d: %v", seq, err)
		}
	}
	if size := gw.Log().Size(); size != n {
		t.Fatalf("log holds %d entries; want %d", size, n)
	}
	wantSeqsInOrder(t, gw, n)
	for _, seq := range []int{1, 300, n} {
		if err := gw.Ingest(ctx, dev, raws[seq], "127.0.0.1"); !errors.Is(err, ErrDuplicate) {
			t.Errorf("resending stored seq %d: %v; want ErrDuplicate", seq, err)
		}
	}
	other, _ := reading.Sign(tn.sensor, dev, temp(300, -1))
	if err := gw.Ingest(ctx, dev, other, "127.0.0.1"); !errors.Is(err, ErrRejected) {
		t.Errorf("another envelope with stored seq 300: %v; want ErrRejected (replay)", err)
	}
	if size := gw.Log().Size(); size != n {
		t.Errorf("log holds %d entries after the resends; want %d", size, n)
	}
}

// TestMQTTPipelined: one MQTT connection publishes many readings at QoS 1
// without waiting for their PUBACKs; each PUBACK comes once its reading is
// stored, and the log holds them all in the order they were published.
func TestMQTTPipelined(t *testing.T) {
	tn := startTestNet(t)
	gw := tn.swapGateway(t, "mqtt-pipelined", Config{Limits: wideLimits}, NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
	b, err := gw.StartMQTT(MQTTConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dev := tn.sensor.ID()
	token, _ := identity.NewCWT(tn.sensor, dev, "gw-test", time.Now(), time.Hour)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetProtocolVersion(4).
		SetClientID(dev).SetUsername(dev).SetPassword(identity.EncodeCWTPassword(token)).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	const n = 500
	toks := make([]paho.Token, 0, n)
	for seq := uint64(1); seq <= n; seq++ {
		raw, _ := reading.Sign(tn.sensor, dev, temp(seq, float64(seq)))
		toks = append(toks, c.Publish(ReadingsTopic(dev), 1, false, raw))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: no PUBACK (%v)", i+1, tok.Error())
		}
		if size := gw.Log().Size(); size < uint64(i+1) {
			t.Fatalf("PUBACK of reading %d with %d entries in the log", i+1, size)
		}
	}
	wantSeqsInOrder(t, gw, n)
}

// wantSeqsInOrder fails the test unless log entry i holds seq i+1, for i < n.
func wantSeqsInOrder(t *testing.T, gw *Gateway, n uint64) {
	t.Helper()
	for i := uint64(0); i < n; i++ {
		e, err := gw.entryAt(i)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Envelope.Readings[0].Seq; got != i+1 {
			t.Fatalf("log entry %d holds seq %d; want %d (stored in the order sent)", i, got, i+1)
		}
	}
}
