package devnet

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

func startDevnet(t *testing.T, home string, base int) *Devnet {
	t.Helper()
	lvl := slog.LevelWarn
	if testing.Verbose() {
		lvl = slog.LevelInfo
	}
	d, err := Start(Config{Home: home, BasePort: base, FastBlocks: true, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDevnet runs a 4-validator devnet and drives it through the API only:
// registration, suspension, a validator crash and catch-up, and a restart
// of the whole network.
func TestDevnet(t *testing.T) {
	home := t.TempDir()
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	d := startDevnet(t, home, base)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			d.Stop()
		}
	})
	ctx := testutil.Context(t, 3*time.Minute)
	admin, err := Keystore(home).Load(DemoAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	c0 := client.New(d.APIURL(0))
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}

	dev, _ := identity.GenerateKey(identity.P256)
	proof, _ := dev.Sign(record.PossessionMessage(d.ChainID(), DemoOrg, dev.ID()))
	res, err := c0.Send(ctx, admin, "", &record.DeviceRegister{Org: DemoOrg, Device: dev.ID(), Class: "sensor", Proof: proof}, true)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	regHeight := res.Height

	// Every node serves the record, with a proof that checks against a signed header.
	for i := range d.Size() {
		c := client.New(d.APIURL(i))
		var got record.Device
		p, found, err := c.ProvedRecord(ctx, "/v1/devices/"+dev.ID(), &got)
		if err != nil || !found || got.Status != record.StatusActive {
			t.Fatalf("node %d: device = %+v, found %v, err %v", i, got, found, err)
		}
		if _, err := c.VerifyProof(ctx, d.ChainID(), p); err != nil {
			t.Fatalf("node %d: proof: %v", i, err)
		}
	}

	// The device can sign; once suspended, its next tx is refused.
	grant := &record.GrantAdd{Grantor: "device:" + dev.ID(), Subject: "org:" + DemoOrg, Action: "read", Resource: "device:" + dev.ID() + "/readings"}
	if _, err := c0.Send(ctx, dev, "", grant, true); err != nil {
		t.Fatalf("device-signed grant: %v", err)
	}
	if _, err := c0.Send(ctx, admin, "", record.NewDeviceStatus(dev.ID(), record.StatusSuspended, "test"), true); err != nil {
		t.Fatalf("suspend: %v", err)
	}
	_, err = c0.Send(ctx, dev, "", grant, true)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Code != "inactive_signer" || ae.Status != http.StatusUnauthorized {
		t.Fatalf("tx by suspended device: err = %v; want inactive_signer (401)", err)
	}

	// Bad input gets a specific error.
	_, err = c0.Submit(ctx, []byte{0xd2, 0x84, 0x40}, false)
	if !errors.As(err, &ae) || ae.Code != "malformed" || ae.Status != http.StatusBadRequest {
		t.Errorf("truncated tx: err = %v; want malformed (400)", err)
	}
	var body []byte
	if err := c0.Get(ctx, "/v1/devices/"+dev.ID()+"/history", &body); err != nil || !strings.Contains(string(body), "device.suspend") {
		t.Errorf("history = %s, %v; want the suspension", body, err)
	}

	// One validator down: the others keep committing; it catches up when back.
	if err := d.StopNode(3); err != nil {
		t.Fatal(err)
	}
	dev2, _ := identity.GenerateKey(identity.Ed25519)
	proof2, _ := dev2.Sign(record.PossessionMessage(d.ChainID(), DemoOrg, dev2.ID()))
	res, err = c0.Send(ctx, admin, "", &record.DeviceRegister{Org: DemoOrg, Device: dev2.ID(), Proof: proof2}, true)
	if err != nil {
		t.Fatalf("register with one validator down: %v", err)
	}
	if res.Height <= regHeight {
		t.Fatalf("height did not advance: %d <= %d", res.Height, regHeight)
	}
	if err := d.StartNode(3); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, ctx, "node 3 to catch up", func() bool {
		a := d.App(3)
		return a != nil && a.Height() >= res.Height
	})
	c3 := client.New(d.APIURL(3))
	var got record.Device
	if err := c3.Get(ctx, "/v1/devices/"+dev2.ID(), &struct {
		Record *record.Device `json:"record"`
	}{&got}); err != nil || got.ID != dev2.ID() {
		t.Fatalf("node 3 after catch-up: %+v, %v", got, err)
	}

	// Restart the whole network: nothing committed is lost and it goes on.
	h := d.App(0).Height()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	d2 := startDevnet(t, home, base)
	defer d2.Stop()
	if !d2.Resumed {
		t.Errorf("second start did not resume")
	}
	if err := d2.WaitForHeight(ctx, h+1); err != nil {
		t.Fatal(err)
	}
	st, err := d2.App(1).View(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{dev.ID(), dev2.ID()} {
		if _, err := st.Device(id); err != nil {
			t.Errorf("after restart: %v", err)
		}
	}
}

// devnetDevice starts a devnet, registers a new device of alg with the demo
// organisation through node `via`, and writes a signed reading of it to a
// file, for the real-client tests.
type devnetDevice struct {
	d    *Devnet
	ctx  context.Context
	dev  *identity.Key
	file string // one signed reading envelope
}

func newDevnetDevice(t *testing.T, alg identity.Algorithm, via int, r reading.Reading) *devnetDevice {
	t.Helper()
	home := t.TempDir()
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	d := startDevnet(t, home, base)
	t.Cleanup(func() { d.Stop() })
	ctx := testutil.Context(t, 2*time.Minute)
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	admin, _ := Keystore(home).Load(DemoAdminKey, nil)
	dev, _ := identity.GenerateKey(alg)
	proof, _ := dev.Sign(record.PossessionMessage(d.ChainID(), DemoOrg, dev.ID()))
	if _, err := client.New(d.APIURL(via)).Send(ctx, admin, "", &record.DeviceRegister{Org: DemoOrg, Device: dev.ID(), Proof: proof}, true); err != nil {
		t.Fatal(err)
	}
	raw, _ := reading.Sign(dev, dev.ID(), r)
	file := filepath.Join(t.TempDir(), "reading.cbor")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return &devnetDevice{d: d, ctx: ctx, dev: dev, file: file}
}

// proveAndVerify waits until node i's entry 0 is anchored and verifies it through node `check`.
func (dd *devnetDevice) proveAndVerify(t *testing.T, i, check int) *proof.Verified {
	t.Helper()
	c := client.New(dd.d.APIURL(i)).WithIdentity(&client.Identity{Key: dd.dev}) // the device reads its own reading
	p, err := c.WaitReadingProof(dd.ctx, 0, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("the reading was never anchored: %v", err)
	}
	v, err := client.New(dd.d.APIURL(check)).VerifyReading(dd.ctx, dd.d.ChainID(), p)
	if err != nil {
		t.Fatalf("VerifyReading: %v", err)
	}
	return v
}

// TestDevnetMQTT publishes a signed reading to a devnet gateway with the
// stock mosquitto_pub client, and checks it end to end against the ledger.
func TestDevnetMQTT(t *testing.T) {
	pub, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Skip("mosquitto_pub is not installed (scripts/test installs mosquitto-clients)")
	}
	v := 21.4
	dd := newDevnetDevice(t, identity.Ed25519, 1, reading.Reading{Seq: 1, Time: time.Now(), ContentType: "temperature/celsius", Value: &v})
	token, _ := identity.NewCWT(dd.dev, dd.dev.ID(), dd.d.ChainID(), time.Now(), time.Hour)
	host, port, _ := net.SplitHostPort(dd.d.MQTTAddr(1))
	out, err := exec.CommandContext(dd.ctx, pub, "-h", host, "-p", port, "-V", "mqttv311", "-q", "1",
		"-i", dd.dev.ID(), "-u", dd.dev.ID(), "-P", identity.EncodeCWTPassword(token),
		"-t", gateway.ReadingsTopic(dd.dev.ID()), "-f", dd.file).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	if n := dd.d.Gateway(1).Log().Size(); n != 1 {
		t.Fatalf("gateway 1 log has %d entries after an acknowledged publish; want 1", n)
	}
	got := dd.proveAndVerify(t, 1, 2)
	if r := got.Envelope.Readings[0]; *r.Value != 21.4 || r.ContentType != "temperature/celsius" {
		t.Errorf("verified reading = %+v", r)
	}
}

// TestDevnetCoAP posts a signed reading to a devnet gateway with libcoap's
// coap-client: 2.04, stored, and verifiable through another node.
func TestDevnetCoAP(t *testing.T) {
	var client string
	for _, name := range []string{"coap-client", "coap-client-notls", "coap-client-gnutls", "coap-client-openssl"} {
		if p, err := exec.LookPath(name); err == nil {
			client = p
			break
		}
	}
	if client == "" {
		t.Skip("coap-client is not installed (scripts/test installs libcoap3-bin)")
	}
	v := 1234.5
	dd := newDevnetDevice(t, identity.P256, 2, reading.Reading{Seq: 7, Time: time.Now(), ContentType: "energy/kwh", Value: &v})
	out, err := exec.CommandContext(dd.ctx, client, "-m", "post", "-f", dd.file, "-B", "10", "coap://"+dd.d.CoAPAddr(2)+"/r").CombinedOutput()
	if err != nil {
		t.Fatalf("coap-client: %v\n%s", err, out)
	}
	if n := dd.d.Gateway(2).Log().Size(); n != 1 {
		t.Fatalf("gateway 2 stored %d readings after coap-client's POST; want 1 (coap-client said %q)", n, out)
	}
	if got := dd.proveAndVerify(t, 2, 0); *got.Envelope.Readings[0].Value != 1234.5 {
		t.Errorf("verified reading = %+v", got.Envelope.Readings[0])
	}
}
