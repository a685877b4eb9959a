package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/mesh/message"
)

// TestMsgCLI: messages through a gateway's mailbox over HTTP and directly
// over the mesh, with the CLI, on a devnet.
func TestMsgCLI(t *testing.T) {
	_, node, ks := testDevnet(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(args ...string) string { return mustCLI(t, node, ks, args...) }
	id := func(name string) string {
		info, err := identity.Keystore{Dir: ks}.Info(name)
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}
	for _, k := range []string{"lamp", "switch", "intruder"} {
		run("keys", "new", k)
		run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", k, "--class", "sensor")
	}
	run("device", "update", "lamp", "--key", "demo-admin", "--label", "mailboxes="+id(devnet.GatewayKey(0)))
	run("grant", "add", "--key", "demo-admin", "--grantor", "org:demo", "--subject", "device:switch", "--action", "message", "--resource", "device:lamp")

	// Into the lamp's mailbox, sealed: the gateway stores what it cannot read.
	if out := run("msg", "send", "--key", "switch", "--to", "lamp", "--seal", "turn on"); !strings.Contains(out, "delivered") {
		t.Fatalf("msg send: %s", out)
	}
	if out, err := cli(t, node, ks, "msg", "send", "--key", "intruder", "--to", "lamp", "turn off"); err == nil || !strings.Contains(out+err.Error(), "not_granted") {
		t.Fatalf("intruder: %v\n%s", err, out)
	}
	out := run("msg", "inbox", "--key", "lamp", "-o", "json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 || got[0]["body"] != "turn on" || got[0]["sealed"] != true {
		t.Fatalf("inbox: %v %s", err, out)
	}
	if out := run("msg", "inbox", "--key", "lamp"); !strings.Contains(out, "no messages") {
		t.Fatalf("inbox after reading: %s", out)
	}
	// Only the lamp reads its mailbox.
	if _, err := cli(t, node, ks, "msg", "inbox", "--key", "switch", "--as", id("lamp")); err == nil {
		t.Fatal("another device read the lamp's mailbox")
	}

	// Directly over the mesh to a listening lamp.
	lampKey, err := identity.Keystore{Dir: ks}.Load("lamp", nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := mesh.NewAPIAuthority(ctx, client.New(node))
	if err != nil {
		t.Fatal(err)
	}
	delivered := make(chan string, 1)
	lamp, err := mesh.New(mesh.Config{Key: lampKey, Authority: auth, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoPubSub: true,
		Handler: func(_ context.Context, m *mesh.Delivery) error { delivered <- string(m.Plaintext); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer lamp.Close()
	if out := run("msg", "send", "--key", "switch", "--to", "lamp", "--direct", lamp.Addrs()[0], "--seal", "dim to 40%"); !strings.Contains(out, "delivered") {
		t.Fatalf("direct: %s", out)
	}
	select {
	case m := <-delivered:
		if m != "dim to 40%" {
			t.Fatalf("lamp got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lamp got nothing")
	}
	// msg listen: the lamp on the mesh, printing what it receives.
	lamp.Close()
	var listenOut testutil.Buffer
	lctx, stopListen := context.WithCancel(ctx)
	listenDone := make(chan error, 1)
	go func() {
		root := newRoot()
		root.SetOut(&listenOut)
		root.SetErr(&listenOut)
		root.SetArgs([]string{"--node", node, "--keystore", ks, "msg", "listen", "--key", "lamp", "--listen", "/ip4/127.0.0.1/tcp/0", "--mdns=false"})
		listenDone <- root.ExecuteContext(lctx)
	}()
	var listenAddr string
	for deadline := time.Now().Add(20 * time.Second); listenAddr == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, line := range strings.Split(listenOut.String(), "\n") {
			if a, ok := strings.CutPrefix(line, "listening on "); ok {
				listenAddr = a
			}
		}
	}
	if listenAddr == "" {
		t.Fatalf("msg listen printed no address:\n%s", listenOut.String())
	}
	if !strings.Contains(listenOut.String(), "reachable through the gateway") {
		t.Errorf("msg listen has no relay slot:\n%s", listenOut.String())
	}
	run("msg", "send", "--key", "switch", "--to", "lamp", "--direct", listenAddr, "--seal", "brighter")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(listenOut.String(), "brighter") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	stopListen()
	<-listenDone
	if !strings.Contains(listenOut.String(), "brighter") {
		t.Fatalf("msg listen did not print the message:\n%s", listenOut.String())
	}

	// The switch anchors the exchange: the two messages' hashes.
	var sent map[string]any
	if err := json.Unmarshal([]byte(run("msg", "send", "--key", "switch", "--to", "lamp", "off", "-o", "json")), &sent); err != nil {
		t.Fatal(err)
	}
	var sent2 map[string]any
	if err := json.Unmarshal([]byte(run("msg", "send", "--key", "switch", "--to", "lamp", "on", "-o", "json")), &sent2); err != nil {
		t.Fatal(err)
	}
	if out := run("msg", "anchor", "--key", "switch", "--peer", "lamp", "--hash", sent["hash"].(string), "--hash", sent2["hash"].(string)); !strings.Contains(out, "exchange.anchor committed") {
		t.Fatalf("msg anchor: %s", out)
	}
	// The gateway's mesh endpoint and metrics.
	var info message.MeshInfo
	if err := client.New(node).Get(ctx, "/v1/mesh", &info); err != nil || info.PeerID == "" || info.Stats.MailboxPulled != 1 {
		t.Fatalf("GET /v1/mesh: %+v %v", info, err)
	}
}
