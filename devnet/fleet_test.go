package devnet

import (
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/gateway"
)

// TestFleet runs a small simulated fleet for a few seconds: every device's
// readings are served by the API of the gateway it prefers, one reading's
// anchor verifies with the device's light client, and a restart of the
// fleet reuses the same devices.
func TestFleet(t *testing.T) {
	base, err := chain.FreePortBase(4)
	if err != nil {
		t.Fatal(err)
	}
	d := startDevnet(t, t.TempDir(), base)
	defer d.Stop()
	ctx := ctxT(t, 2*time.Minute)
	var mu sync.Mutex
	first := map[int]*device.Receipt{}
	fl, err := d.StartFleet(ctx, FleetConfig{Size: 6, Wake: 500 * time.Millisecond, OnSend: func(i int, rc *device.Receipt) {
		mu.Lock()
		defer mu.Unlock()
		if first[i] == nil {
			first[i] = rc
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if fl.Registered != 6 {
		t.Errorf("registered %d devices; want 6", fl.Registered)
	}
	waitFor(t, ctx, "every device to send", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(first) == 6
	})
	for i, fd := range fl.Devices {
		c := api.NewClient(d.APIURL(i % d.Size()))
		var page struct {
			Items []gateway.ReadingItem `json:"items"`
		}
		if err := c.Get(ctx, "/v1/readings?device="+url.QueryEscape(fd.Device.ID()), &page); err != nil || len(page.Items) == 0 {
			t.Errorf("%s (%s over %s): %d readings on gateway %d, %v", fd.Name, fd.Class, fd.Transport, len(page.Items), i%d.Size(), err)
		}
	}
	mu.Lock()
	rc := first[1]
	mu.Unlock()
	for {
		a, err := fl.Devices[1].Device.WasAnchored(ctx, rc)
		if err != nil {
			t.Fatalf("WasAnchored: %v", err)
		}
		if a.Anchored {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	env, rd := fl.Sent()
	t.Logf("fleet of 6: %d envelopes, %d readings", env, rd)
	if err := fl.Stop(); err != nil {
		t.Fatal(err)
	}
	fl2, err := d.StartFleet(ctx, FleetConfig{Size: 6, Wake: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer fl2.Stop()
	if fl2.Registered != 0 || fl2.Devices[0].Device.ID() != fl.Devices[0].Device.ID() {
		t.Errorf("restarted fleet registered %d devices; want the same ones", fl2.Registered)
	}
}
