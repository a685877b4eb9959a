package device_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// Two devices of a class report their status at each wake; one stops.
// Fleet health, asked of every gateway, counts it silent once it missed
// two of its wake intervals (from its desired configuration), lists it
// first, and shows the other's last status; another organisation's admin
// is refused, as for any reading.
func TestFleetHealthSilent(t *testing.T) {
	tn := startNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	class := freshName("health")
	keys := []*identity.Key{}
	for range 2 {
		k, _ := identity.GenerateKey(identity.Ed25519)
		keys = append(keys, k)
	}
	tn.registerClass(t, class, keys...)
	tn.send(t, tn.admin, &record.ConfigSet{Org: devnet.DemoOrg, Scope: record.ConfigClass, Name: class, Version: 1, Settings: map[string]any{device.SettingWake: 1}})
	var wg sync.WaitGroup
	stops := make([]context.CancelFunc, len(keys))
	defer func() {
		for _, s := range stops {
			s()
		}
		wg.Wait()
	}()
	battery := 64.0
	for i, k := range keys {
		d, err := device.New(k, device.WithGateways(tn.gw(i), tn.gw(2)), device.WithChainID(tn.d.ChainID()), device.WithTrust(tn.trust))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		s, _ := device.NewSensor(device.ClassTemperature, uint64(i))
		a := &device.Agent{Device: d, Sensors: []device.Sensor{s}, Wake: time.Second, ConfigEvery: 1,
			Status: func() record.StatusReport {
				return record.StatusReport{Battery: &battery, Firmware: "1.0.0", Uptime: 9}
			}}
		actx, stop := context.WithCancel(ctx)
		stops[i] = stop
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(actx) }()
	}
	var gws []*client.Client
	for i := range tn.d.Size() {
		gws = append(gws, client.New(tn.d.APIURL(i)).WithIdentity(&client.Identity{Key: tn.admin}))
	}
	health := func() *client.Fleet {
		f, err := client.FleetHealth(ctx, gws, devnet.DemoOrg, client.FleetOptions{Class: class, Missed: 2, Wake: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	wait := func(what string, ok func(*client.Fleet) bool) *client.Fleet {
		for {
			f := health()
			if ok(f) {
				return f
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: %+v", what, f)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	wait("both devices seen, ok", func(f *client.Fleet) bool { return f.Counts[class][client.HealthOK] == 2 })
	stops[0]()
	f := wait("the stopped device silent", func(f *client.Fleet) bool {
		return f.Counts[class][client.HealthSilent] == 1 && f.Counts[class][client.HealthOK] == 1
	})
	if f.Devices[0].Device != keys[0].ID() || f.Devices[0].State != client.HealthSilent || f.Devices[0].Wake != time.Second {
		t.Errorf("first listed: %+v; want the stopped device, silent, waking every 1 s (its class configuration)", f.Devices[0])
	}
	if st := f.Devices[1].Status; st == nil || st.Battery == nil || *st.Battery != battery || st.WakeS != 1 {
		t.Errorf("status of the live device: %+v; want its battery and its wake interval", st)
	}
	if len(f.Devices[1].LastSeenBy) == 0 {
		t.Error("no gateway's view of the live device")
	}

	// The API's view (GET /v1/fleet/{org}) is the same computation on one
	// gateway, under the read rule as the caller.
	var api client.Fleet
	if err := gws[0].Get(ctx, "/v1/fleet/"+devnet.DemoOrg+"?missed=2&class="+class, &api); err != nil {
		t.Fatal(err)
	}
	if api.Counts[class][client.HealthSilent]+api.Counts[class][client.HealthOK]+api.Counts[class][client.HealthNever] != 2 {
		t.Errorf("GET /v1/fleet: %+v; want the class's 2 devices", api.Counts)
	}
	other, _ := identity.GenerateKey(identity.Ed25519)
	var ae *client.Error
	if err := client.New(tn.d.APIURL(0)).WithIdentity(&client.Identity{Key: other}).Get(ctx, "/v1/fleet/"+devnet.DemoOrg+"?class="+class, &api); !errors.As(err, &ae) || ae.Status != 403 {
		t.Errorf("GET /v1/fleet as a stranger: %v; want 403", err)
	}
	if _, err := client.FleetHealth(ctx, []*client.Client{client.New(tn.d.APIURL(0)).WithIdentity(&client.Identity{Key: other})}, devnet.DemoOrg,
		client.FleetOptions{Class: class}); err == nil {
		t.Error("a stranger read the fleet's health")
	}
}
