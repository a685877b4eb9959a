package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
)

// TestCrossTenantReads tries every path that serves a reading's value —
// HTTP list, get, verify and stream, the CLI, the mailbox, MQTT
// subscriptions — as an outsider (no token, and a stranger's token) and as
// another organisation's admin and device, against node processes; the
// value must appear in no answer (0 values disclosed), each refusal says
// what is missing, and the reading's public part still verifies. Controls:
// globex's own admin and device read it.
func TestCrossTenantReads(t *testing.T) {
	long(t)
	start := time.Now()
	n := StartNet(t, Manifest{Name: "privacy", Validators: 4, Gateways: []int{0}, Orgs: []string{"acme", "globex"}, Mesh: true,
		Devices: []Device{{"acme-s1", "acme", "sensor"}, {"globex-s1", "globex", "sensor"}}})
	r := result{Scenario: "cross-tenant-reads", Invariant: "0 values disclosed to outsiders and other tenants; public part verifies"}
	defer func() { report(t, start, r) }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	globexS1 := n.Key("globex-s1").ID()
	n.keepMailbox("globex", globexS1, 0, 0)

	// globex's sensor stores a reading with a value found nowhere else.
	const secret = "7391.8125"
	out := n.MustCLI("readings", "send", "--key", "globex-s1", "--seq", "1", "--type", "temperature/celsius", "--value", secret)
	var index uint64
	if _, err := fmt.Sscanf(out, "stored as entry %d", &index); err != nil {
		t.Fatalf("readings send = %q", out)
	}
	gw := n.Nodes[0]
	owner := gw.Client.WithIdentity(&client.Identity{Key: n.Key("globex-admin"), ChainID: n.ChainID})
	if _, err := owner.WaitReadingProof(ctx, index, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}

	// Controls: the owner's admin and the device read it.
	controls := 0
	for _, as := range []string{"globex-admin", "globex-s1"} {
		if out, err := n.CLI("readings", "verify", fmt.Sprint(index), "--identity", as, "--via", "http://"+n.Nodes[2].API); err != nil || !strings.Contains(out, secret) {
			t.Fatalf("control: %s cannot read its reading: %v %q", as, err, out)
		}
		controls++
	}

	disclosed := 0
	tried := 0
	leaks := func(what, answer string) {
		tried++
		if strings.Contains(answer, secret) {
			disclosed++
			t.Errorf("DISCLOSED by %s: %s", what, answer)
		} else {
			t.Logf("no value: %s: %.160s", what, strings.Join(strings.Fields(answer), " "))
		}
	}
	stranger, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	readers := []struct {
		name string
		cl   *client.Client
		cli  []string // CLI flags that read as it
		key  *identity.Key
	}{
		{"anonymous", gw.Client, nil, nil},
		{"a stranger's key", gw.Client.WithIdentity(&client.Identity{Key: stranger, ChainID: n.ChainID}), nil, stranger},
		{"acme's admin", gw.Client.WithIdentity(&client.Identity{Key: n.Key("acme-admin"), ChainID: n.ChainID}), []string{"--identity", "acme-admin"}, n.Key("acme-admin")},
		{"acme's device", gw.Client.WithIdentity(&client.Identity{Key: n.Key("acme-s1"), ChainID: n.ChainID}), []string{"--identity", "acme-s1"}, n.Key("acme-s1")},
	}
	for _, rd := range readers {
		// HTTP list and get.
		var raw []byte
		err := rd.cl.Get(ctx, "/v1/readings?device="+globexS1, &raw)
		var ae *client.Error
		if !errors.As(err, &ae) || (ae.Status != http.StatusUnauthorized && ae.Status != http.StatusForbidden) {
			t.Errorf("%s: list = %v; want 401 or 403", rd.name, err)
		}
		leaks(rd.name+": GET /v1/readings", fmt.Sprint(err)+string(raw))
		raw = nil
		if err := rd.cl.Get(ctx, fmt.Sprintf("/v1/readings/%d", index), &raw); err != nil {
			t.Errorf("%s: get: %v", rd.name, err)
		}
		leaks(rd.name+": GET /v1/readings/{index}", string(raw))
		p, err := rd.cl.Reading(ctx, index)
		if err != nil || p.Withheld == nil {
			t.Errorf("%s: get = %+v, %v; want withheld", rd.name, p, err)
		} else if _, err := proof.VerifyAnchored(ctx, client.Checker{Client: n.Nodes[1].Client, ChainID: n.ChainID}, p); err != nil {
			t.Errorf("%s: the public part does not verify: %v", rd.name, err)
		}
		// The stream.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+gw.API+"/v1/readings/stream?device="+globexS1, nil)
		if err := rd.cl.Authorize(ctx, req); err != nil {
			t.Fatal(err)
		}
		sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err := http.DefaultClient.Do(req.WithContext(sctx))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: stream answered %d", rd.name, resp.StatusCode)
			}
			leaks(rd.name+": stream", string(b))
		} else {
			t.Errorf("%s: stream: %v", rd.name, err)
		}
		scancel()
		// The mailbox.
		if rd.key != nil {
			tok, err := identity.NewCWT(rd.key, rd.key.ID(), n.ChainID, time.Now(), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			held, err := message.MailboxClient{Base: "http://" + gw.API}.Held(ctx, globexS1, tok, 10)
			if err == nil {
				t.Errorf("%s: read globex-s1's mailbox: %+v", rd.name, held)
			}
			leaks(rd.name+": mailbox", fmt.Sprint(err))
		}
		// The CLI.
		if rd.cli != nil {
			for _, args := range [][]string{
				{"readings", "list", "--device", globexS1},
				{"readings", "get", fmt.Sprint(index)},
				{"readings", "verify", fmt.Sprint(index)},
			} {
				out, err := n.CLI(append(args, rd.cli...)...)
				leaks(rd.name+": thingnet "+strings.Join(args, " "), out+fmt.Sprint(err))
			}
		}
	}
	// MQTT: acme's device subscribes to globex's readings, then globex's
	// sensor publishes another.
	mc, err := mqttConnect(gw.MQTT, n.Key("acme-s1").ID(), n.deviceToken(n.Key("acme-s1"), n.Key("acme-s1").ID()))
	if err != nil {
		t.Fatalf("control: acme-s1 cannot connect: %v", err)
	}
	got := make(chan string, 4)
	tok := mc.Subscribe(gateway.ReadingsTopic(globexS1), 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) })
	tok.WaitTimeout(10 * time.Second)
	// The control: globex's sensor follows its own readings.
	own, err := mqttConnect(gw.MQTT, globexS1, n.deviceToken(n.Key("globex-s1"), globexS1))
	if err != nil {
		t.Fatalf("control: globex-s1 cannot connect: %v", err)
	}
	ownGot := make(chan struct{}, 4)
	if tok := own.Subscribe(gateway.ReadingsTopic(globexS1), 1, func(paho.Client, paho.Message) { ownGot <- struct{}{} }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("control: globex-s1 cannot follow its readings: %v", tok.Error())
	}
	v := 7391.8125
	env, err := reading.Sign(n.Key("globex-s1"), globexS1, reading.Reading{Seq: 2, Time: time.Now(), ContentType: "temperature/celsius", Value: &v})
	if err != nil {
		t.Fatal(err)
	}
	if tok := own.Publish(gateway.ReadingsTopic(globexS1), 1, false, env); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("control: globex-s1 cannot publish: %v", tok.Error())
	}
	select {
	case <-ownGot:
	case <-ctx.Done():
		t.Fatal("control: globex-s1 never received its own reading over MQTT")
	}
	select {
	case p := <-got:
		leaks("acme's device: MQTT subscription", p+" "+secret) // any delivery is a disclosure (the payload is CBOR)
	default:
		leaks("acme's device: MQTT subscription", "nothing delivered (the owner's subscriber was)")
	}
	own.Disconnect(0)
	if mc.IsConnectionOpen() {
		mc.Disconnect(0)
	}

	if disclosed != 0 {
		t.Errorf("%d of %d reads disclosed the value", disclosed, tried)
	}
	r.Load = fmt.Sprintf("controls: %d owner reads", controls)
	r.Faults = "outsider, stranger's key, other org's admin and device"
	r.Inputs = fmt.Sprintf("%d reads (HTTP list/get/stream, mailbox, CLI, MQTT)", tried)
	t.Logf("cross-tenant reads: %d tried, %d values disclosed", tried, disclosed)
}
