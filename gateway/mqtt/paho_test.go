package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/thingnet/thingnet/gateway/edge"
	"github.com/thingnet/thingnet/internal/testutil"
)

// pahoClient is a connected (or refused) Eclipse Paho client, MQTT 3.1.1.
type pahoClient struct {
	paho.Client
	lost chan error // the connection-lost handler's error
}

// dialPaho connects with username dev, client id clientID and token as the
// password (its bytes, as a Go device would send them). It returns the
// client and the CONNECT's token; the client is disconnected when the test
// ends.
func dialPaho(t *testing.T, addr, dev, clientID string, token []byte) (*pahoClient, *paho.ConnectToken) {
	t.Helper()
	c := &pahoClient{lost: make(chan error, 1)}
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetProtocolVersion(4).
		SetClientID(clientID).
		SetUsername(dev).
		SetPassword(string(token)).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	c.Client = paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("paho: CONNECT got no answer")
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, tok.(*paho.ConnectToken)
}

func mustDialPaho(t *testing.T, e *env, dev string) *pahoClient {
	t.Helper()
	c, tok := dialPaho(t, e.addr, dev, dev, e.auth.token(dev))
	if tok.Error() != nil {
		t.Fatalf("paho connect as %s: %v", dev, tok.Error())
	}
	return c
}

// TestPahoConnect checks CONNECT outcomes with a real Go client.
func TestPahoConnect(t *testing.T) {
	e := startBroker(t, nil)
	tests := []struct {
		name   string
		user   string
		token  []byte
		client string
		code   byte
	}{
		{"valid", devA, e.auth.token(devA), devA, 0},
		{"valid, no client id", devA, e.auth.token(devA), "", 0},
		{"forged", devA, fakeToken([]byte("forger"), devA, time.Now().Add(time.Hour)), devA, 4},
		{"expired", devA, fakeToken(e.auth.secret, devA, time.Now().Add(-time.Second)), devA, 4},
		{"other device's token", devA, e.auth.token(devB), devA, 4},
		{"revoked", devRevoked, e.auth.token(devRevoked), devRevoked, 5},
		{"unknown", devUnknown, e.auth.token(devUnknown), devUnknown, 5},
		{"other device's client id", devA, e.auth.token(devA), devB, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, tok := dialPaho(t, e.addr, tt.user, tt.client, tt.token)
			if tok.ReturnCode() != tt.code {
				t.Fatalf("CONNACK return code = %d (%v); want %d", tok.ReturnCode(), tok.Error(), tt.code)
			}
			if tt.code == 0 && !c.IsConnected() {
				t.Fatal("accepted but not connected")
			}
		})
	}
}

// TestPahoAckAfterIngest proves with a real client that a QoS 1 publish
// completes only once Ingest has returned.
func TestPahoAckAfterIngest(t *testing.T) {
	e := startBroker(t, nil)
	c := mustDialPaho(t, e, devA)
	tok := c.Publish(ReadingsTopic(devA), 1, false, "block paho")
	select {
	case <-e.ingest.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("Ingest was not called")
	}
	if tok.WaitTimeout(300 * time.Millisecond) {
		t.Fatalf("publish completed (err %v) while Ingest was still blocked", tok.Error())
	}
	e.ingest.release <- struct{}{}
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish after Ingest returned: done=%v err=%v", tok.WaitTimeout(0), tok.Error())
	}
	if !e.ingest.has(devA, "block paho") {
		t.Fatal("acknowledged reading not stored")
	}
}

// TestPahoIngestRejected checks that a refused QoS 1 reading disconnects a
// 3.1.1 client instead of being acknowledged.
func TestPahoIngestRejected(t *testing.T) {
	e := startBroker(t, nil)
	c := mustDialPaho(t, e, devA)
	tok := c.Publish(ReadingsTopic(devA), 1, false, "bad reading")
	select {
	case err := <-c.lost:
		t.Logf("connection lost as expected: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the client was not disconnected")
	}
	if tok.WaitTimeout(100*time.Millisecond) && tok.Error() == nil {
		t.Fatal("the refused reading was acknowledged")
	}
}

// TestPahoFlood checks that a flooding device is cut to its budget while
// another device's readings all go through.
func TestPahoFlood(t *testing.T) {
	e := startBroker(t, nil)
	const budget, flood, honest = 5, 200, 20
	e.limits.setMessages(edge.DeviceKey(devA), budget)
	a := mustDialPaho(t, e, devA)
	b := mustDialPaho(t, e, devB)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range flood {
			a.Publish(ReadingsTopic(devA), 0, false, fmt.Sprintf("flood %d", i))
		}
	}()
	var errs []error
	for i := range honest {
		tok := b.Publish(ReadingsTopic(devB), 1, false, fmt.Sprintf("honest %d", i))
		if !tok.WaitTimeout(5 * time.Second) {
			errs = append(errs, fmt.Errorf("honest reading %d: no PUBACK", i))
		} else if tok.Error() != nil {
			errs = append(errs, tok.Error())
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("the honest device was affected: %v", err)
	}
	testutil.WaitFor(t, testutil.Context(t, 5*time.Second), "the flood to be counted", func() bool {
		return e.b.Stats().RateLimited[LimitMessage] == flood-budget
	})
	if got := e.ingest.count(devA); got != budget {
		t.Errorf("flooder: %d readings stored; want its budget, %d", got, budget)
	}
	if got := e.ingest.count(devB); got != honest {
		t.Errorf("honest device: %d readings stored; want %d", got, honest)
	}
	// Over its budget, a QoS 1 reading of a 3.1.1 client ends its connection.
	a.Publish(ReadingsTopic(devA), 1, false, "one more")
	select {
	case <-a.lost:
	case <-time.After(5 * time.Second):
		t.Fatal("the flooder's QoS 1 reading over budget did not disconnect it")
	}
}

// TestPahoSubscribe checks subscriptions through the ACL with a real client,
// and that a granted device follows another's readings.
func TestPahoSubscribe(t *testing.T) {
	e := startBroker(t, nil)
	e.acl.grant(devB, ReadingsTopic(devA))
	b := mustDialPaho(t, e, devB)
	got := make(chan string, 4)
	tok := b.SubscribeMultiple(map[string]byte{ReadingsTopic(devA): 1, "#": 1, "things/+/readings": 1}, func(_ paho.Client, m paho.Message) {
		got <- m.Topic() + " " + string(m.Payload())
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	res := tok.(*paho.SubscribeToken).Result()
	if res[ReadingsTopic(devA)] != 1 || res["#"] != 0x80 || res["things/+/readings"] != 0x80 {
		t.Fatalf("SUBACK = %v; want 1 for the granted topic, 0x80 for the others", res)
	}
	a := mustDialPaho(t, e, devA)
	if tok := a.Publish(ReadingsTopic(devA), 1, false, "21.4"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case m := <-got:
		if want := ReadingsTopic(devA) + " 21.4"; m != want {
			t.Errorf("received %q; want %q", m, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the granted subscriber received nothing")
	}
	// Once the grant is revoked, deliveries stop.
	e.acl.revoke(devB, ReadingsTopic(devA))
	if tok := a.Publish(ReadingsTopic(devA), 1, false, "21.5"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	// (paho hands a message to the handler of every filter it matches, the
	// refused ones included, so 21.4 may come more than once.)
	timeout := time.After(300 * time.Millisecond)
	for {
		select {
		case m := <-got:
			if strings.HasSuffix(m, "21.5") {
				t.Fatalf("received %q after the grant was revoked", m)
			}
		case <-timeout:
			return
		}
	}
}
