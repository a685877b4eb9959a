package device_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// registerLabelled registers a new device of the demo organisation in
// class, with labels.
func (tn *testNet) registerLabelled(t testing.TB, class string, labels map[string]string) *identity.Key {
	t.Helper()
	k, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	proof, _ := k.Sign(record.PossessionMessage(tn.d.ChainID(), devnet.DemoOrg, k.ID()))
	tn.send(t, tn.admin, &record.DeviceRegister{Org: devnet.DemoOrg, Device: k.ID(), Class: class, Labels: labels, Proof: proof})
	return k
}

func freshName(prefix string) string { return fmt.Sprintf("%s-%x", prefix, rand.Uint64()) }

// A class-wide change (one record) converges on every device of the class
// running the agent: each proves it, applies it (its wake interval and a
// setting of its own), and reports what it applied as a reading its
// organisation's admin can read — and another organisation's admin
// cannot, nor can it set the class's configuration.
func TestConfigClassWideConverges(t *testing.T) {
	tn := startNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	class := freshName("cfg")
	const n = 3
	type applied struct {
		dev  string
		mode any
	}
	got := make(chan applied, 64)
	var devs []*device.Device
	var wg sync.WaitGroup
	actx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	keys := make([]*identity.Key, n)
	for i := range keys {
		keys[i], _ = identity.GenerateKey(identity.Ed25519)
	}
	tn.registerClass(t, class, keys...)
	for i, k := range keys {
		var mode sync.Map
		d, err := device.New(k, device.WithGateways(tn.gw(i%tn.d.Size())), device.WithChainID(tn.d.ChainID()),
			device.WithTrust(tn.trust), device.WithStateDir(t.TempDir()),
			device.WithConfigHandler("mode", func(v any) error {
				if s, ok := v.(string); !ok || (s != "eco" && s != "full") {
					return fmt.Errorf("mode %v: want eco or full", v)
				}
				mode.Store("mode", v)
				return nil
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		devs = append(devs, d)
		s, _ := device.NewSensor(device.ClassTemperature, uint64(i))
		a := &device.Agent{Device: d, Sensors: []device.Sensor{s}, Wake: 200 * time.Millisecond, ConfigEvery: 1,
			OnConfig: func(rep *record.ConfigReport, sent bool) {
				if sent {
					got <- applied{d.ID(), rep.Applied["mode"]}
				}
			}}
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(actx) }()
	}

	tn.send(t, tn.admin, &record.ConfigSet{Org: devnet.DemoOrg, Scope: record.ConfigClass, Name: class, Version: 1,
		Settings: map[string]any{"mode": "eco", device.SettingWake: 1}})
	done := map[string]bool{}
	for len(done) < n {
		select {
		case a := <-got:
			if a.mode == "eco" {
				done[a.dev] = true
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d devices applied the class configuration", len(done), n)
		}
	}
	for _, d := range devs {
		if d.Wake() != time.Second {
			t.Errorf("device %s wakes every %v; the class configuration says 1 s", d.ID(), d.Wake())
		}
	}

	// Desired (public ledger data) and reported (a reading, private) agree.
	admin := client.New(tn.d.APIURL(0)).WithIdentity(&client.Identity{Key: tn.admin})
	id := devs[0].ID()
	des, err := client.New(tn.d.APIURL(1)).Desired(ctx, id)
	if err != nil || des.Settings["mode"] != "eco" || len(des.Layers) != 1 {
		t.Fatalf("desired of %s: %+v, %v", id, des, err)
	}
	var reps []client.Reported
	for deadline := time.Now().Add(30 * time.Second); ; {
		if reps, err = client.New(tn.gw(0).API).WithIdentity(&client.Identity{Key: tn.admin}).ReportedConfigs(ctx, id, 10); err != nil {
			t.Fatal(err)
		}
		if len(reps) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the reading is indexed after it is acknowledged
	}
	if len(reps) == 0 || len(record.DiffConfig(des.Settings, reps[len(reps)-1].Report.Applied)) != 0 {
		t.Fatalf("reported by %s: %+v; want what is desired, %v", id, reps, des.Settings)
	}
	if _, err := admin.Reading(ctx, reps[0].Index); err != nil {
		t.Errorf("the report's log entry: %v", err)
	}

	// Another organisation's admin can neither set nor read.
	other, _ := identity.GenerateKey(identity.Ed25519)
	org := freshName("rival")
	tn.send(t, other, &record.OrgCreate{ID: org})
	if _, err := client.New(tn.d.APIURL(0)).Send(ctx, other, "", &record.ConfigSet{Org: devnet.DemoOrg, Scope: record.ConfigClass, Name: class, Version: 2,
		Settings: map[string]any{"mode": "full"}}, true); record.CodeOf(err) != record.CodeUnauthorized {
		var ae *client.Error
		if !errors.As(err, &ae) {
			t.Errorf("another organisation's admin set the class configuration: %v", err)
		}
	}
	if _, err := client.New(tn.gw(0).API).WithIdentity(&client.Identity{Key: other}).ReportedConfigs(ctx, id, 1); err == nil {
		t.Error("another organisation's admin read the reported configuration")
	}
	if cur, err := client.New(tn.d.APIURL(0)).ConfigTarget(ctx, devnet.DemoOrg, record.ConfigClass, class); err != nil || cur.Version != 1 {
		t.Errorf("class configuration after the rival's attempt: %+v, %v; want version 1", cur, err)
	}
}

// cfgLiar is a gateway that forges desired configurations in proofs, or
// answers the proof of another key (another device's configuration).
func cfgLiar(t *testing.T, upstream string, swapKey func(key []byte) []byte) *httptest.Server {
	return proofLiar(t, upstream, swapKey, func(v []byte) []byte {
		r, err := record.DecodeConfigRecord(v)
		if err != nil {
			return v
		}
		r.Settings = map[string]any{"mode": "evil"}
		out, _ := record.Marshal(r)
		return out
	})
}

// proofLiar is a gateway that answers the proof of another key
// (swapKey), or, without swapKey, changes the proved values (forge).
func proofLiar(t *testing.T, upstream string, swapKey func(key []byte) []byte, forge func(value []byte) []byte) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(upstream)
	p := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		if swapKey != nil && r.Out.URL.Path == "/v1/proofs" {
			q := r.Out.URL.Query()
			for i, h := range q["key"] { // one key, or a batch
				k, _ := hex.DecodeString(h)
				q["key"][i] = hex.EncodeToString(swapKey(k))
			}
			r.Out.URL.RawQuery = q.Encode()
		}
	}}
	p.ModifyResponse = func(resp *http.Response) error {
		if swapKey != nil || resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/v1/proofs" {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var batch client.Proofs
		var pr record.Proof
		switch {
		case json.Unmarshal(body, &batch) == nil && len(batch.Proofs) > 0:
			for _, p := range batch.Proofs {
				if p != nil && p.Value != nil {
					p.Value = forge(p.Value)
				}
			}
			body, _ = json.Marshal(&batch)
		case json.Unmarshal(body, &pr) == nil && pr.Value != nil:
			pr.Value = forge(pr.Value)
			body, _ = json.Marshal(&pr)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s
}

// A gateway cannot push a configuration: a forged one, or another
// device's, fails the device's proof (it is refused, the gateway named in
// the report, and the truth taken from an honest gateway); a layer set
// through a "manage" grant is refused once the grant is revoked.
func TestConfigRefusals(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	class := freshName("cfgr")
	site := freshName("north")
	me := tn.registerLabelled(t, class, map[string]string{"site": site})
	peer := tn.registerLabelled(t, class, nil)
	tn.send(t, tn.admin, &record.ConfigSet{Org: devnet.DemoOrg, Scope: record.ConfigLabel, Name: "site=" + site, Version: 1, Settings: map[string]any{"mode": "eco"}})
	tn.send(t, tn.admin, &record.ConfigSet{Org: devnet.DemoOrg, Scope: record.ConfigDevice, Name: peer.ID(), Version: 1, Settings: map[string]any{"mode": "full"}})
	handler := device.WithConfigHandler("mode", func(any) error { return nil })
	opts := func(dir string, gws ...device.Gateway) []device.Option {
		return []device.Option{device.WithGateways(gws...), device.WithChainID(tn.d.ChainID()), device.WithTrust(tn.trust), device.WithStateDir(dir), handler}
	}
	forger := cfgLiar(t, tn.d.APIURL(0), nil)
	swapper := cfgLiar(t, tn.d.APIURL(0), func(k []byte) []byte {
		if bytes.Equal(k, record.ConfigKey(devnet.DemoOrg, record.ConfigDevice, me.ID())) {
			return record.ConfigKey(devnet.DemoOrg, record.ConfigDevice, peer.ID())
		}
		return k
	})
	for name, bad := range map[string]*httptest.Server{"forged": forger, "another device's": swapper} {
		alone, err := device.New(me, opts(t.TempDir(), device.Gateway{API: bad.URL})...)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := alone.ApplyConfig(ctx); !errors.Is(err, record.ErrBadProof) {
			t.Errorf("%s configuration: %v; want a proof refusal", name, err)
		}
		if a, _ := alone.AppliedConfig(); len(a) != 0 {
			t.Errorf("%s configuration applied: %v", name, a)
		}
		alone.Close()
	}

	d, err := device.New(me, opts(t.TempDir(), device.Gateway{API: forger.URL}, tn.gw(1))...)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rep, sent, err := d.ApplyConfig(ctx)
	if err != nil || !sent || rep.Applied["mode"] != "eco" || len(rep.Unproved) != 1 || rep.Unproved[0] != forger.URL {
		t.Fatalf("with an honest gateway behind the forger: %+v, sent %v, %v; want eco, the forger named", rep, sent, err)
	}

	// A manage grantee of another organisation sets the device's layer;
	// revoked, its layer is refused.
	rival, _ := identity.GenerateKey(identity.Ed25519)
	org := freshName("integrator")
	tn.send(t, rival, &record.OrgCreate{ID: org})
	tn.send(t, tn.admin, &record.GrantAdd{Grantor: "org:" + devnet.DemoOrg, Subject: "org:" + org, Action: record.ActionManage, Resource: "device:" + me.ID()})
	tn.send(t, rival, &record.ConfigSet{Org: devnet.DemoOrg, Scope: record.ConfigDevice, Name: me.ID(), Version: 1, Settings: map[string]any{"mode": "full"}})
	if rep, _, err = d.ApplyConfig(ctx); err != nil || rep.Applied["mode"] != "full" {
		t.Fatalf("through the grant: %+v, %v; want full", rep, err)
	}
	cur, err := client.New(tn.d.APIURL(0)).ConfigTarget(ctx, devnet.DemoOrg, record.ConfigDevice, me.ID())
	if err != nil || cur.Grant == 0 {
		t.Fatalf("device layer: %+v, %v; want set through a grant", cur, err)
	}
	tn.send(t, tn.admin, &record.GrantRevoke{ID: cur.Grant})
	if rep, _, err = d.ApplyConfig(ctx); err != nil || rep.Applied["mode"] != "eco" || len(rep.Refused) != 1 || rep.Refused[0].Scope != record.ConfigDevice {
		t.Fatalf("after the revoke: %+v, %v; want the device layer refused, the label's eco", rep, err)
	}
}

// TestConfigRoundTrips: a device proves its record and then every layer
// of its configuration and its organisation in one batched request
// (GET /v1/proofs with several keys), not one request per key; the batch
// proves what single requests prove.
func TestConfigRoundTrips(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	class, site := freshName("cfgrt"), freshName("west")
	me := tn.registerLabelled(t, class, map[string]string{"site": site, "floor": "2"})
	tn.send(t, tn.admin, &record.ConfigSet{Org: devnet.DemoOrg, Scope: record.ConfigClass, Name: class, Version: 1, Settings: map[string]any{"mode": "eco", "wake_s": int64(60)}})
	tn.send(t, tn.admin, &record.ConfigSet{Org: devnet.DemoOrg, Scope: record.ConfigLabel, Name: "site=" + site, Version: 1, Settings: map[string]any{"mode": "full"}})
	u, _ := url.Parse(tn.d.APIURL(0))
	var mu sync.Mutex
	asked := map[string]int{}
	p := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		mu.Lock()
		defer mu.Unlock()
		switch path := r.In.URL.Path; {
		case path == "/v1/proofs":
			asked["proofs"]++
			asked["keys"] += len(r.In.URL.Query()["key"])
		case strings.HasPrefix(path, "/v1/devices/"):
			asked["devices"]++
		}
	}}
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	d, err := device.New(me, device.WithGateways(device.Gateway{API: s.URL}), device.WithChainID(tn.d.ChainID()), device.WithTrust(tn.trust),
		device.WithStateDir(t.TempDir()), device.WithConfigHandler("mode", func(any) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pc, err := d.DesiredConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pc.Settings["mode"] != "full" || pc.Settings["wake_s"] != int64(60) || len(pc.Layers) != 2 {
		t.Fatalf("proved %+v; want the class and label layers merged", pc)
	}
	mu.Lock()
	got := maps.Clone(asked)
	mu.Unlock()
	// Its record, then the organisation and its 4 layers (class, two
	// labels, itself) in one request.
	if got["devices"] != 1 || got["proofs"] != 1 || got["keys"] != 5 {
		t.Fatalf("requests: %v; want its record and one batch of 5 keys", got)
	}

	c := client.New(tn.d.APIURL(0))
	keys := [][]byte{record.OrgKey(devnet.DemoOrg), record.ConfigKey(devnet.DemoOrg, record.ConfigClass, class), record.ConfigKey(devnet.DemoOrg, record.ConfigClass, freshName("none"))}
	batch, err := c.ProveKeys(ctx, pc.Height, keys...)
	if err != nil || batch.Height != pc.Height {
		t.Fatalf("ProveKeys: %+v, %v", batch, err)
	}
	for i, k := range keys {
		var one record.Proof
		if err := c.Get(ctx, "/v1/proofs?key="+hex.EncodeToString(k)+"&height="+strconv.FormatInt(pc.Height, 10), &one); err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(batch.Proofs[i])
		b, _ := json.Marshal(&one)
		if !bytes.Equal(a, b) {
			t.Errorf("key %d: the batch proved\n%s\nalone\n%s", i, a, b)
		}
	}
}
