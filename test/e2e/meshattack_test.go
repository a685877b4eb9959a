package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh"
	meshmsg "github.com/thingnet/thingnet/mesh/message"
)

// The CoAP and mesh parts of TestImpersonationReplay.

// coapClientBin is libcoap's command-line client ("" if not installed;
// scripts/e2e installs Debian's libcoap3-bin).
func coapClientBin() string {
	for _, name := range []string{"coap-client", "coap-client-notls", "coap-client-gnutls", "coap-client-openssl"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// coapAttacks sends readings to gateway 0's CoAP server with go-coap's
// client and libcoap's coap-client: a control, then forged, unregistered,
// impersonating, revoked and replayed readings. want gets the controls.
func (n *Net) coapAttacks(ctx context.Context, a *attempts, sign func(k *identity.Key, as string, seq uint64, v float64) []byte,
	want map[string]map[uint64]bool, s1, s2, sr, stranger *identity.Key) {
	t := n.t
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	cc, err := udp.Dial(n.Nodes[0].CoAP, options.WithDialer(d), options.WithErrors(func(error) {}))
	if err != nil {
		t.Fatalf("CoAP dial %s: %v", n.Nodes[0].CoAP, err)
	}
	defer cc.Close()
	post := func(raw []byte) codes.Code {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		resp, err := cc.Post(cctx, "/r", message.AppCoseSign1, bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("CoAP POST: %v", err)
		}
		defer cc.ReleaseMessage(resp)
		return resp.Code()
	}
	control := sign(s1, s1.ID(), 10, 30)
	if c := post(control); c != codes.Changed {
		t.Fatalf("control: a good reading over CoAP was answered %v", c)
	}
	want[s1.ID()][10] = true
	try := func(what string, raw []byte) {
		c := post(raw)
		a.refused("CoAP "+what, c != codes.Changed, c.String())
	}
	try("reading with a forged signature", flipLast(sign(s1, s1.ID(), 11, 99)))
	try("reading of an unregistered key", sign(stranger, stranger.ID(), 2, 99))
	try("sensor-2's key signing as sensor-1", sign(s2, s1.ID(), 11, 99))
	try("reading of a revoked device", sign(sr, sr.ID(), 3, 99))
	try("older seq replayed with new content", sign(s1, s1.ID(), 9, 99))
	// An exact resend is acknowledged (2.04), never stored twice: the log
	// check of the test counts it.
	a.tried++
	if c := post(control); c != codes.Changed {
		t.Errorf("an exact resend over CoAP was answered %v; docs/coap.md says 2.04", c)
	}

	bin := coapClientBin()
	if bin == "" {
		t.Log("coap-client not installed (Debian libcoap3-bin): the libcoap part is skipped")
		return
	}
	coapClient := func(raw []byte) string {
		f := filepath.Join(n.Dir, fmt.Sprintf("coap-%d.cbor", time.Now().UnixNano()))
		if err := os.WriteFile(f, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(cctx, bin, "-m", "post", "-t", "18", "-B", "10", "-f", f, "coap://"+n.Nodes[0].CoAP+"/r").CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	// coap-client prints nothing for 2.04 (no payload), the code otherwise.
	if out := coapClient(sign(s1, s1.ID(), 12, 31)); strings.Contains(out, "4.") || strings.Contains(out, "5.") {
		t.Fatalf("control: coap-client's good reading: %s", out)
	}
	want[s1.ID()][12] = true
	for what, raw := range map[string][]byte{
		"coap-client: a forged signature":           flipLast(sign(s1, s1.ID(), 13, 99)),
		"coap-client: sensor-2 signing as sensor-1": sign(s2, s1.ID(), 13, 99),
		"coap-client: a revoked device":             sign(sr, sr.ID(), 4, 99),
	} {
		out := coapClient(raw)
		a.refused("CoAP "+what, strings.Contains(out, "4.00"), out)
	}
}

// meshAttacks tries the mesh paths of gateway 0 and of a device process
// (`thingnet msg listen` as lamp): sensor-1 may message lamp, whose
// mailbox the gateway keeps. Unregistered keys, a registered device with
// no grant, a revoked device, a message sent over another key's
// connection, replays, forged deposits over HTTP, reading or deleting
// lamp's mail with another device's token, and taking over lamp's wake
// channel or pull stream: none may be accepted; afterwards lamp's mailbox
// holds exactly the two control messages and the listener printed exactly
// the direct control message.
func (n *Net) meshAttacks(ctx context.Context, a *attempts, s1, s2, sr, stranger, lamp *identity.Key) {
	t := n.t
	t.Helper()
	gw := n.Nodes[0].GatewayID
	n.keepMailbox("acme", lamp.ID(), 0, 0)
	n.grantMessage("acme", s1.ID(), lamp.ID())
	l := n.startListener(ctx, 0, "lamp")
	s1n := n.meshDevice(ctx, 0, s1, "", nil)
	s2n := n.meshDevice(ctx, 0, s2, "", nil)
	srn := n.meshDevice(ctx, 0, sr, "", nil)
	strn := n.meshDevice(ctx, 0, stranger, "", nil)
	for _, m := range []*mesh.Node{s1n, s2n, srn, strn} {
		if _, err := m.AddPeer(l.Addr); err != nil {
			t.Fatal(err)
		}
	}
	auth, err := mesh.NewAPIAuthority(ctx, n.Nodes[0].Client)
	if err != nil {
		t.Fatal(err)
	}
	seq := meshmsg.TimeSeq(time.Now())
	compose := func(k *identity.Key, from, to string) []byte {
		seq++
		env, err := meshmsg.Compose(k, from, seq, meshmsg.Outgoing{To: to, Body: []byte(fmt.Sprint("msg ", seq)), Wake: true}, auth)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	result := func(res *meshmsg.Result, err error) (bool, string) {
		if err != nil {
			return true, "error: " + err.Error()
		}
		return res.Status != meshmsg.StatusDelivered, res.Status.String() + ": " + res.Reason
	}
	delivered := func(what string, res *meshmsg.Result, err error) {
		if err != nil || res.Status != meshmsg.StatusDelivered {
			refused, detail := result(res, err)
			t.Fatalf("control: %s refused (%v): %s", what, refused, detail)
		}
	}

	// Direct messages to the lamp process.
	direct := compose(s1, s1.ID(), lamp.ID())
	res, err := s1n.Send(ctx, direct)
	delivered("sensor-1's direct message to lamp", res, err)
	sendTry := func(what string, from *mesh.Node, env []byte) {
		ok, detail := result(from.Send(ctx, env))
		a.refused("mesh direct: "+what, ok, detail)
	}
	sendTry("the same message replayed", s1n, direct)
	sendTry("sensor-1's message sent over sensor-2's connection", s2n, compose(s1, s1.ID(), lamp.ID()))
	sendTry("a registered device with no grant", s2n, compose(s2, s2.ID(), lamp.ID()))
	sendTry("an unregistered key", strn, compose(stranger, stranger.ID(), lamp.ID()))
	sendTry("an unregistered key signing as sensor-1", strn, compose(stranger, s1.ID(), lamp.ID()))
	sendTry("a revoked device", srn, compose(sr, sr.ID(), lamp.ID()))

	// Deposits into lamp's mailbox at the gateway, over the mesh and HTTP.
	var kept [][]byte
	overMesh := compose(s1, s1.ID(), lamp.ID())
	res, err = s1n.Deposit(ctx, gw, overMesh)
	delivered("sensor-1's deposit over the mesh", res, err)
	kept = append(kept, overMesh)
	mc := meshmsg.MailboxClient{Base: "http://" + n.Nodes[0].API}
	overHTTP := compose(s1, s1.ID(), lamp.ID())
	dr, err := mc.Deposit(ctx, overHTTP)
	if err != nil {
		t.Fatalf("control: sensor-1's deposit over HTTP: %v", err)
	}
	delivered("sensor-1's deposit over HTTP", &dr.Result, nil)
	kept = append(kept, overHTTP)
	depositTry := func(what string, from *mesh.Node, env []byte) {
		ok, detail := result(from.Deposit(ctx, gw, env))
		a.refused("mesh deposit: "+what, ok, detail)
	}
	httpTry := func(what string, env []byte) {
		dr, err := mc.Deposit(ctx, env)
		var res *meshmsg.Result
		if dr != nil {
			res = &dr.Result
		}
		ok, detail := result(res, err)
		a.refused("HTTP deposit: "+what, ok, detail)
	}
	depositTry("replayed", s1n, overMesh)
	depositTry("replayed from another peer", s2n, overHTTP)
	depositTry("a registered device with no grant", s2n, compose(s2, s2.ID(), lamp.ID()))
	depositTry("an unregistered key", strn, compose(stranger, stranger.ID(), lamp.ID()))
	depositTry("a revoked device", srn, compose(sr, sr.ID(), lamp.ID()))
	depositTry("sensor-2 signing as sensor-1", s2n, compose(s2, s1.ID(), lamp.ID()))
	httpTry("replayed", overHTTP)
	httpTry("a forged signature", flipLast(compose(s1, s1.ID(), lamp.ID())))
	httpTry("sensor-2 signing as sensor-1", compose(s2, s1.ID(), lamp.ID()))
	httpTry("an unregistered key", compose(stranger, stranger.ID(), lamp.ID()))
	httpTry("a registered device with no grant", compose(s2, s2.ID(), lamp.ID()))
	httpTry("a revoked device", compose(sr, sr.ID(), lamp.ID()))
	httpTry("for a device whose mailbox is not here", compose(s1, s1.ID(), s2.ID()))
	func() {
		env := compose(s1, s1.ID(), lamp.ID())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.Nodes[0].API+"/v1/mailbox/"+s2.ID(), bytes.NewReader(env))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		a.refused("HTTP deposit: lamp's message posted to another device's mailbox", resp.StatusCode >= 300, resp.Status)
	}()

	// Reading and deleting lamp's mail, taking over its wake channel.
	token := func(k *identity.Key, as string) []byte {
		tok, err := identity.NewCWT(k, as, n.ChainID, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	_, err = mc.Held(ctx, lamp.ID(), token(s1, s1.ID()), 64)
	a.refused("HTTP: read lamp's mailbox with sensor-1's token", err != nil, fmt.Sprint(err))
	_, err = mc.Held(ctx, lamp.ID(), token(s2, lamp.ID()), 64)
	a.refused("HTTP: read lamp's mailbox with a token for lamp signed by sensor-2", err != nil, fmt.Sprint(err))
	_, err = mc.Ack(ctx, lamp.ID(), token(s1, s1.ID()), 1000)
	a.refused("HTTP: delete lamp's mail with sensor-1's token", err != nil, fmt.Sprint(err))
	fake := n.meshDevice(ctx, 0, stranger, lamp.ID(), nil)
	wakes, err := fake.Sleep(ctx, gw)
	if err == nil {
		select {
		case _, open := <-wakes:
			if open {
				err = fmt.Errorf("woken")
			} else {
				err = fmt.Errorf("the gateway closed the channel")
			}
		case <-time.After(15 * time.Second):
		}
	}
	a.refused("mesh: an unregistered key opens lamp's wake channel", err != nil, fmt.Sprint(err))
	fake2 := n.meshDevice(ctx, 0, s2, lamp.ID(), nil)
	got, err := fake2.Pull(ctx, gw)
	a.refused("mesh: sensor-2 pulls lamp's mailbox", err != nil && got == 0, fmt.Sprintf("%d pulled, %v", got, err))

	// What lamp has: its mailbox (read with its own token) and what the
	// listener printed.
	held, err := mc.Held(ctx, lamp.ID(), token(lamp, lamp.ID()), 64)
	if err != nil {
		t.Fatalf("lamp reads its mailbox: %v", err)
	}
	heldHashes := map[[32]byte]bool{}
	for _, m := range held.Messages {
		heldHashes[sha256.Sum256(m.Envelope)] = true
	}
	if len(held.Messages) != len(kept) {
		a.accepted = append(a.accepted, "mailbox")
		t.Errorf("lamp's mailbox holds %d messages; the controls are %d", len(held.Messages), len(kept))
	}
	for i, k := range kept {
		if !heldHashes[sha256.Sum256(k)] {
			t.Errorf("control deposit %d is not in lamp's mailbox", i)
		}
	}
	if got := l.received(); len(got) != 1 || got[0]["from"] != s1.ID() {
		a.accepted = append(a.accepted, "listener")
		t.Errorf("lamp's process printed %d messages, want the 1 control from sensor-1: %v", len(got), got)
	}
}
