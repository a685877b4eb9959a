//go:build cgo

package pkcs11_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	tnpkcs11 "github.com/thingnet/thingnet/identity/pkcs11"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// A device whose key (P-256, then Ed25519) is in a token is registered, sends readings over
// MQTT (its CWT and envelopes signed on the token) and HTTP, rotates to
// a new key made on the token (the ledger keeps its id), sends with it,
// and its old key is refused. Its state directory holds no key.
func TestTokenDeviceOnDevnet(t *testing.T) {
	token(t)
	if testing.Short() {
		t.Skip("starts a devnet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base, err := chain.FreePortBase(1)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	d, err := devnet.Start(devnet.Config{Home: home, Validators: 1, BasePort: base, FastBlocks: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	c := client.New(d.APIURL(0))
	admin, err := devnet.Keystore(home).Load(devnet.DemoAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range algs {
		t.Run(a.alg.String(), func(t *testing.T) { testTokenDevice(ctx, t, d, c, admin, a.alg) })
	}
}

func testTokenDevice(ctx context.Context, t *testing.T, d *devnet.Devnet, c *client.Client, admin *identity.Key, alg identity.Algorithm) {
	k, tok, err := tnpkcs11.Generate(keyURI("devnet", unique("sensor")), alg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	id := k.ID()
	pop, err := k.Sign(record.PossessionMessage(d.ChainID(), devnet.DemoOrg, id))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := device.RegisterAll(ctx, c, admin, d.ChainID(), []*record.DeviceRegister{{Org: devnet.DemoOrg, Device: id, Class: "sensor", Proof: pop}}); err != nil {
		t.Fatal(err)
	}
	gw := device.Gateway{API: d.APIURL(0), MQTT: d.MQTTAddr(0)}
	state := t.TempDir()
	dev, err := device.New(k, device.WithGateways(gw), device.WithChainID(d.ChainID()), device.WithStateDir(state), device.WithTransport(device.MQTT))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	v := 21.5
	temp := reading.Reading{ContentType: "temperature/celsius", Value: &v}
	if _, err := dev.Send(ctx, temp); err != nil {
		t.Fatalf("a reading over MQTT signed on the token: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, device.KeyFile)); !os.IsNotExist(err) {
		t.Errorf("the state directory has a key file (%v)", err)
	}

	// Rotation to a second key made on the token, signed by the first.
	k2, tok2, err := tnpkcs11.Generate(keyURI("devnet", unique("sensor-2027")), alg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok2.Close()
	proof, err := k2.Sign(record.RotationMessage(d.ChainID(), id, k2.ID()))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c.Send(ctx, k, id, &record.DeviceRotate{Device: id, NewKey: k2.ID(), Proof: proof}, true); err != nil || res.Code != 0 {
		t.Fatalf("device.rotate: %+v, %v", res, err)
	}
	dev2, err := device.New(k2, device.WithID(id), device.WithGateways(gw), device.WithChainID(d.ChainID()), device.WithStateDir(state))
	if err != nil {
		t.Fatal(err)
	}
	defer dev2.Close()
	rc, err := dev2.Send(ctx, temp)
	if err != nil {
		t.Fatalf("a reading with the new token key: %v", err)
	}
	if rc.Index < 0 {
		t.Errorf("no log index over HTTP: %+v", rc)
	}
	old, err := device.New(k, device.WithGateways(gw), device.WithChainID(d.ChainID()), device.WithTransport(device.HTTP))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Send(ctx, temp); err == nil {
		t.Error("the rotated-out key's reading was accepted")
	} else {
		t.Logf("the old key: %v", err)
	}
}
