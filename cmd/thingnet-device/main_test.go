package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// TestDeviceProgram runs the minimal device program against a devnet as a
// board would: it shows a claim code, an admin claims it, it sends signed
// readings over MQTT that verify end to end, and it executes a command
// the ledger proves is for it.
func TestDeviceProgram(t *testing.T) {
	ctx := testutil.Context(t, 2*time.Minute)
	base, err := chain.FreePortBase(1)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	d, err := devnet.Start(devnet.Config{Home: home, Validators: 1, BasePort: base, FastBlocks: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	c := client.New(d.APIURL(0))
	if err := d.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	h, err := c.Header(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := devnet.Keystore(home).Load(devnet.DemoAdminKey, nil)
	if err != nil {
		t.Fatal(err)
	}

	out := &testutil.Buffer{}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"-state", t.TempDir(), "-chain", d.ChainID(), "-org", devnet.DemoOrg,
			"-gateway", d.APIURL(0) + ",mqtt=" + d.MQTTAddr(0), "-transport", "mqtt", "-wake", "1s",
			"-trust", fmt.Sprintf("2:%X", h.SignedHeader.Hash())}, out)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the program's output:\n%s", out.String())
		}
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	})
	match := func(re string) []string {
		var m []string
		testutil.WaitFor(t, ctx, "output matching "+re, func() bool {
			m = regexp.MustCompile(re).FindStringSubmatch(out.String())
			return m != nil
		})
		return m
	}
	id := match(`new key: device id (\S+)`)[1]
	code := match(`thingnet device claim (\S+)`)[1]

	// The admin claims it.
	claim, err := device.ParseClaimCode(code)
	if err != nil {
		t.Fatal(err)
	}
	if err := claim.Check(d.ChainID(), devnet.DemoOrg, time.Now()); err != nil || claim.Device != id {
		t.Fatalf("claim code of %s: %v", claim.Device, err)
	}
	if _, err := device.RegisterAll(ctx, c, admin, d.ChainID(), []*record.DeviceRegister{claim.Register("lamp", "", nil)}); err != nil {
		t.Fatal(err)
	}
	match(`sent seq \[\d+\] to \S+ over mqtt`)

	// Its readings are stored and verify end to end.
	var page struct {
		Items []client.ReadingItem `json:"items"`
	}
	c = c.WithIdentity(&client.Identity{Key: admin}) // values are served to the organisation's admin
	testutil.WaitFor(t, ctx, "a stored reading of the device", func() bool {
		return c.Get(ctx, "/v1/readings?device="+id, &page) == nil && len(page.Items) > 0
	})
	p, err := c.WaitReadingProof(ctx, page.Items[0].Index, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.VerifyReading(ctx, d.ChainID(), p); err != nil || v.Envelope.Device != id {
		t.Fatalf("the device's reading does not verify: %v", err)
	}

	// A command for it, through an agreement, is proved and executed.
	if res, err := c.Send(ctx, admin, "", &record.AgreementDeploy{Source: []byte(testutil.SwitchAgreement), Parties: map[string]string{"lamp": "device:" + id, "owner": "org:" + devnet.DemoOrg}}, true); err != nil || res.Code != 0 {
		t.Fatalf("deploy: %+v, %v", res, err)
	}
	var ags struct {
		Items []record.Agreement `json:"items"`
	}
	if err := c.Get(ctx, "/v1/agreements?limit=1000", &ags); err != nil || len(ags.Items) == 0 {
		t.Fatalf("agreements: %v", err)
	}
	ag := ags.Items[len(ags.Items)-1].ID
	if res, err := c.Send(ctx, admin, "", &record.AgreementCall{ID: ag, Transition: "toggle"}, true); err != nil || res.Code != 0 {
		t.Fatalf("toggle: %+v, %v", res, err)
	}
	if m := match(`command \d+ of agreement (\d+) \(toggle\): on`); m[1] != fmt.Sprint(ag) {
		t.Errorf("executed a command of agreement %s; want %d", m[1], ag)
	}

	// A job for it (its class, "lamp") is proved at a wake, run once and
	// reported: the ledger counts it succeeded.
	if res, err := c.Send(ctx, admin, "", &record.JobCreate{Org: devnet.DemoOrg, Command: "ping", Args: map[string]any{"n": 1},
		Target: record.JobTarget{Class: "lamp"}, Waves: 1, BlocksPerWave: 1, MaxFailures: 1, TimeoutBlocks: 1000}, true); err != nil || res.Code != 0 {
		t.Fatalf("job.create: %+v, %v", res, err)
	}
	match(`ping map\[n:1\]: pong`)
	match(`job 1 of demo \(ping\): succeeded`)
	testutil.WaitFor(t, ctx, "job 1 counted succeeded", func() bool {
		p, err := c.Job(ctx, devnet.DemoOrg, 1)
		return err == nil && p.Job.Succeeded == 1
	})
}
