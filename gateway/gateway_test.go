package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/gateway/edge"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// testNet is one validator with its ledger, API and gateway.
type testNet struct {
	app    *ledger.App
	net    *chain.LocalNet
	gw     *Gateway
	client *client.Client
	admin  *identity.Key
	gwKey  *identity.Key
	sensor *identity.Key
	weak   *identity.Key // attested by the gateway
	dir    string
}

func startTestNet(t testing.TB) *testNet {
	t.Helper()
	return startTestNetKeep(t, 0)
}

// startTestNetKeep starts a test net whose ledger keeps keep past state
// versions (0: the default).
func startTestNetKeep(t testing.TB, keep int64) *testNet {
	t.Helper()
	tn := &testNet{dir: t.TempDir()}
	tn.admin, tn.gwKey, tn.sensor, tn.weak = testutil.Key(t, identity.Ed25519), testutil.Key(t, identity.Ed25519), testutil.Key(t, identity.Ed25519), testutil.Key(t, identity.Ed25519)
	g := ledger.GenesisState{
		Orgs: []ledger.GenesisOrg{{ID: "acme", Admins: []string{tn.admin.ID()}}},
		Devices: []ledger.GenesisDevice{
			{ID: tn.gwKey.ID(), Org: "acme", Class: record.ClassGateway},
			{ID: tn.sensor.ID(), Org: "acme", Class: "sensor"},
		},
	}
	st, _ := json.Marshal(g)
	var err error
	tn.net, err = chain.StartLocalNet(chain.LocalNetConfig{
		Dir: filepath.Join(tn.dir, "net"), Validators: 1, ChainID: "gw-test", FastBlocks: true, AppState: st,
		NewApp: func(_ int, home string) (abci.Application, error) {
			app, err := ledger.NewApp(ledger.Config{Dir: filepath.Join(home, "data", "ledger"), KeepVersions: keep})
			tn.app = app
			return app, err
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tn.net.Stop() })
	tn.startGateway(t)
	s := api.New(tn.app, tn.net.Node(0).Client(), nil)
	s.Mount(tn.gatewayRoutes())
	s.MountHandler("GET /v1/readings/stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tn.gw.stream(w, r) }))
	s.MountHandler("GET /v1/readings/query", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tn.gw.queryReadings(w, r) }))
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	// The tests read as acme's admin: values are served to who may read them.
	tn.client = client.New(s.Addr()).WithIdentity(&client.Identity{Key: tn.admin, ChainID: "gw-test"})
	ctx := testutil.Context(t, time.Minute)
	if err := tn.net.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// Register the weak device, attested by the gateway.
	proof, _ := tn.weak.Sign(record.PossessionMessage("gw-test", "acme", tn.weak.ID()))
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.DeviceRegister{Org: "acme", Device: tn.weak.ID(), Proof: proof, AttestedBy: tn.gwKey.ID()}, true); err != nil {
		t.Fatal(err)
	}
	return tn
}

// gatewayRoutes forwards to whichever gateway runs now (tests restart it).
func (tn *testNet) gatewayRoutes() map[string]api.HandlerFunc {
	out := map[string]api.HandlerFunc{}
	for pattern := range tn.gw.Routes(tn.app) {
		out[pattern] = func(r *http.Request) (any, error) { return tn.gw.Routes(tn.app)[pattern](r) }
	}
	return out
}

func (tn *testNet) startGateway(t testing.TB) { tn.startGatewayWith(t, nil) }

// startGatewayWith starts the gateway with its config changed by set.
func (tn *testNet) startGatewayWith(t testing.TB, set func(*Config)) {
	t.Helper()
	c := Config{Dir: filepath.Join(tn.dir, "gateway"), Key: tn.gwKey, AnchorInterval: 100 * time.Millisecond}
	if set != nil {
		set(&c)
	}
	gw, err := New(c, NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
	if err != nil {
		t.Fatal(err)
	}
	tn.gw = gw
	t.Cleanup(func() { gw.Close() })
}

// wideLimits never bind: for tests that ingest many readings quickly.
var wideLimits = ratelimit.Limits{MsgsPerSec: 1e6, Burst: 1e6, BytesPerSec: 1e12, ByteBurst: 1 << 30, ConnectsPerSec: 1e3, ConnectBurst: 1e3, MaxPacket: 1 << 20}

func temp(seq uint64, v float64) reading.Reading {
	return reading.Reading{Seq: seq, Time: time.UnixMilli(1_700_000_000_000 + int64(seq)), ContentType: "temperature/celsius", Value: &v}
}

// post sends an envelope to POST /v1/readings; it returns the log index or the API error.
func (tn *testNet) post(t *testing.T, raw []byte) (uint64, error) {
	t.Helper()
	resp, err := http.Post(tn.client.BaseURL+"/v1/readings", "application/cose", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		var e client.ErrorBody
		json.Unmarshal(b, &e)
		return 0, &client.Error{Status: resp.StatusCode, ErrorDetail: e.Error}
	}
	var ok struct{ Index uint64 }
	if err := json.Unmarshal(b, &ok); err != nil {
		t.Fatal(err)
	}
	return ok.Index, nil
}

// proof waits until the reading at index is anchored and returns its proof.
func (tn *testNet) proof(t *testing.T, index uint64) *proof.Reading {
	t.Helper()
	ctx := testutil.Context(t, time.Minute)
	for {
		p, err := tn.client.Reading(ctx, index)
		if err == nil {
			err = p.Err()
		}
		if err == nil {
			return p
		}
		if !errors.Is(err, proof.ErrNotAnchored) {
			t.Fatalf("GET reading %d: %v", index, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("reading %d never anchored", index)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestReadingsEndToEnd(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, time.Minute)
	single, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(1, 21.4))
	batch, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(2, 21.5), temp(3, 21.6), temp(4, 21.7))
	attested, _ := reading.SignAttested(tn.gwKey, tn.gwKey.ID(), tn.weak.ID(), temp(1, 5))
	var idx []uint64
	for _, raw := range [][]byte{single, batch, attested} {
		i, err := tn.post(t, raw)
		if err != nil {
			t.Fatalf("POST reading: %v", err)
		}
		idx = append(idx, i)
	}
	// An exact resend of the last stored envelope (the device lost the
	// answer) is acknowledged, and stored once.
	resp, err := http.Post(tn.client.BaseURL+"/v1/readings", "application/cose", bytes.NewReader(batch))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ReplaceAll(string(b), " ", ""), `"duplicate":true`) {
		t.Fatalf("resend: %s %s", resp.Status, b)
	}

	for n, i := range idx {
		p := tn.proof(t, i)
		v, err := tn.client.VerifyReading(ctx, "gw-test", p)
		if err != nil {
			t.Fatalf("VerifyReading(%d): %v", i, err)
		}
		if n == 1 && len(v.Envelope.Readings) != 3 {
			t.Errorf("batch has %d readings; want 3", len(v.Envelope.Readings))
		}
		// Tampering anywhere breaks it.
		bad := *p
		bad.Envelope = bytes.Clone(p.Envelope)
		bad.Envelope[len(bad.Envelope)-1] ^= 1
		if _, err := tn.client.VerifyReading(ctx, "gw-test", &bad); err == nil {
			t.Errorf("tampered envelope %d verified", i)
		}
		if len(p.Inclusion) > 0 {
			bad = *p
			bad.Inclusion = [][]byte{bytes.Repeat([]byte{1}, 32)}
			if _, err := tn.client.VerifyReading(ctx, "gw-test", &bad); err == nil {
				t.Errorf("tampered inclusion proof %d verified", i)
			}
		}
	}

	// Queries by device and time.
	var list struct{ Items []client.ReadingItem }
	if err := tn.client.Get(ctx, "/v1/readings?device="+tn.sensor.ID(), &list); err != nil || len(list.Items) != 4 {
		t.Fatalf("list = %+v, %v; want the 4 readings of the sensor", list, err)
	}
	if list.Items[0].Seq != 1 || list.Items[3].Seq != 4 || *list.Items[3].Value != 21.7 || list.Items[1].Index != idx[1] {
		t.Errorf("list = %+v; want seqs 1..4 in order, the batch at index %d", list.Items, idx[1])
	}
	from, to := temp(2, 0).Time.UnixMilli(), temp(4, 0).Time.UnixMilli()
	if err := tn.client.Get(ctx, fmt.Sprintf("/v1/readings?device=%s&from=%d&to=%d", tn.sensor.ID(), from, to), &list); err != nil || len(list.Items) != 2 || list.Items[0].Seq != 2 {
		t.Errorf("list [2,4) = %+v, %v; want seqs 2 and 3", list, err)
	}

	// Refusals: replay, another key, unknown device, attested device signing itself.
	stranger := testutil.Key(t, identity.Ed25519)
	forged, _ := reading.Sign(stranger, tn.sensor.ID(), temp(9, 0))
	unknown, _ := reading.Sign(stranger, stranger.ID(), temp(1, 0))
	self, _ := reading.Sign(tn.weak, tn.weak.ID(), temp(2, 0))
	for name, raw := range map[string][]byte{"replay": single, "replayed batch": batch, "forged": forged, "unknown": unknown, "attested self-signed": self, "garbage": []byte("21.4")} {
		if _, err := tn.post(t, raw); err == nil {
			t.Errorf("%s reading accepted", name)
		}
	}
	if s := tn.gw.Stats(); s.Accepted != 3 || s.Readings != 5 {
		t.Errorf("stats = %+v; want 3 envelopes, 5 readings", s)
	}

	// Suspended: refused from the next block.
	if _, err := tn.client.Send(ctx, tn.admin, "", record.NewDeviceStatus(tn.sensor.ID(), record.StatusSuspended, "test"), true); err != nil {
		t.Fatal(err)
	}
	late, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(10, 1))
	if _, err := tn.post(t, late); err == nil {
		t.Errorf("reading of a suspended device accepted")
	}

	// Restart: the log and the replay protection survive, even with the
	// index lost (it is rebuilt from the log).
	size := tn.gw.Log().Size()
	tn.gw.Close()
	if err := os.RemoveAll(filepath.Join(tn.dir, "gateway", "index")); err != nil {
		t.Fatal(err)
	}
	tn.startGateway(t)
	if err := tn.client.Get(ctx, "/v1/readings?device="+tn.sensor.ID(), &list); err != nil || len(list.Items) != 4 {
		t.Errorf("list after rebuilding the index = %+v, %v; want 4", list, err)
	}
	if got := tn.gw.Log().Size(); got != size {
		t.Errorf("log size after restart = %d; want %d", got, size)
	}
	if _, err := tn.client.Send(ctx, tn.admin, "", record.NewDeviceStatus(tn.sensor.ID(), record.StatusActive, ""), true); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.post(t, batch); err == nil {
		t.Errorf("replay after restart accepted")
	}
	if _, err := tn.post(t, late); err != nil {
		t.Errorf("fresh reading after restart: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, time.Minute)
	now := time.Now()
	good, _ := identity.NewCWT(tn.sensor, tn.sensor.ID(), "gw-test", now, time.Hour)
	otherChain, _ := identity.NewCWT(tn.sensor, tn.sensor.ID(), "other", now, time.Hour)
	expired, _ := identity.NewCWT(tn.sensor, tn.sensor.ID(), "gw-test", now.Add(-3*time.Hour), time.Hour)
	forged, _ := identity.NewCWT(testutil.Key(t, identity.Ed25519), tn.sensor.ID(), "gw-test", now, time.Hour)
	stranger := testutil.Key(t, identity.Ed25519)
	unknown, _ := identity.NewCWT(stranger, stranger.ID(), "gw-test", now, time.Hour)
	for _, tc := range []struct {
		name, device string
		token        []byte
		want         error
	}{
		{"good", tn.sensor.ID(), good, nil},
		{"other chain", tn.sensor.ID(), otherChain, ErrBadToken},
		{"expired", tn.sensor.ID(), expired, ErrBadToken},
		{"forged", tn.sensor.ID(), forged, ErrBadToken},
		{"another device's token", tn.weak.ID(), good, ErrBadToken},
		{"unknown", stranger.ID(), unknown, ErrUnknownDevice},
	} {
		if err := tn.gw.Authenticate(ctx, tc.device, tc.token); !errors.Is(err, tc.want) {
			t.Errorf("%s: Authenticate = %v; want %v", tc.name, err, tc.want)
		}
	}
	if !tn.gw.MaySubscribe(tn.sensor.ID(), ReadingsTopic(tn.sensor.ID())) {
		t.Errorf("a device may not follow its own readings")
	}
	if tn.gw.MaySubscribe(tn.weak.ID(), ReadingsTopic(tn.sensor.ID())) || tn.gw.MaySubscribe(tn.weak.ID(), "things/#") {
		t.Errorf("a device may follow another's readings without a grant")
	}
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.GrantAdd{Grantor: "org:acme", Subject: "device:" + tn.weak.ID(), Action: "read", Resource: "device:" + tn.sensor.ID() + "/readings"}, true); err != nil {
		t.Fatal(err)
	}
	if !tn.gw.MaySubscribe(tn.weak.ID(), ReadingsTopic(tn.sensor.ID())) {
		t.Errorf("a granted device may not follow the readings")
	}
	if _, err := tn.client.Send(ctx, tn.admin, "", record.NewDeviceStatus(tn.sensor.ID(), record.StatusRevoked, ""), true); err != nil {
		t.Fatal(err)
	}
	if err := tn.gw.Authenticate(ctx, tn.sensor.ID(), good); !errors.Is(err, ErrInactiveDevice) {
		t.Errorf("revoked: Authenticate = %v; want ErrInactiveDevice", err)
	}
}

// TestQuarantinePolicy: a device that keeps exceeding its limits is
// reported; once its organisation grants the gateway "manage" (its policy),
// the gateway suspends it on the ledger.
func TestQuarantinePolicy(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, time.Minute)
	flood := func() {
		for i := 0; i < 2*OffenderThreshold+40; i++ {
			tn.gw.limiter.AllowMessage(edge.DeviceKey(tn.sensor.ID()), 10)
		}
	}
	flood()
	status := func() record.Status {
		st, err := tn.app.View(0)
		if err != nil {
			t.Fatal(err)
		}
		d, err := st.Device(tn.sensor.ID())
		if err != nil {
			t.Fatal(err)
		}
		return d.Status
	}
	time.Sleep(500 * time.Millisecond) // several duty rounds
	if got := status(); got != record.StatusActive {
		t.Fatalf("without a policy the device was %s; want it only reported", got)
	}
	if tn.gw.Stats().Offenders == 0 {
		t.Errorf("the offender was not reported")
	}
	if _, err := tn.client.Send(ctx, tn.admin, "", &record.GrantAdd{Grantor: "org:acme", Subject: "device:" + tn.gwKey.ID(), Action: record.ActionManage, Resource: "org:acme"}, true); err != nil {
		t.Fatal(err)
	}
	for status() != record.StatusSuspended {
		select {
		case <-ctx.Done():
			t.Fatal("the offender was never quarantined")
		case <-time.After(50 * time.Millisecond):
		}
	}
	st, _ := tn.app.View(0)
	h, _ := st.History(tn.sensor.ID(), 1, 10)
	if last := h[len(h)-1]; last.Signer != tn.gwKey.ID() || !strings.Contains(last.Note, "quarantined by gateway") {
		t.Errorf("last history event = %+v; want the gateway's quarantine", last)
	}
}

// TestStream follows a device's readings over server-sent events, as the
// device's organisation admin; a device without a read grant is refused.
func TestStream(t *testing.T) {
	tn := startTestNet(t)
	ctx := testutil.Context(t, time.Minute)
	open := func(caller *identity.Key) (*http.Response, error) {
		tok, _ := identity.NewCWT(caller, caller.ID(), "gw-test", time.Now(), time.Hour)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tn.client.BaseURL+"/v1/readings/stream?device="+tn.sensor.ID(), nil)
		req.Header.Set("Authorization", "Bearer "+identity.EncodeCWTPassword(tok))
		return http.DefaultClient.Do(req)
	}
	if resp, err := open(tn.weak); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("stream without a grant: %v, %v; want 403", resp.Status, err)
	}
	if resp, err := open(testutil.Key(t, identity.Ed25519)); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("stream by a stranger: %v, %v; want 403", resp.Status, err)
	}
	resp, err := open(tn.admin)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream as admin: %v, %v", resp.Status, err)
	}
	defer resp.Body.Close()
	raw, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(1, 42))
	if _, err := tn.post(t, raw); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var item client.ReadingItem
		if err := json.Unmarshal([]byte(line), &item); err != nil || item.Seq != 1 || *item.Value != 42 {
			t.Fatalf("event = %s (%v); want the reading", line, err)
		}
		return
	}
	t.Fatalf("stream ended without the reading: %v", sc.Err())
}

// TestReplayBeyondTrackedDevices: with more devices than the replay tracker
// holds, an evicted device's replays are still refused (its last seq comes
// from the index) and its fresh readings accepted.
func TestReplayBeyondTrackedDevices(t *testing.T) {
	tn := startTestNet(t)
	tn.gw.Close()
	gw, err := New(Config{Dir: filepath.Join(tn.dir, "small"), Key: tn.gwKey, MaxKeys: 1}, NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	ctx := testutil.Context(t, time.Minute)
	s1, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(1, 1))
	w1, _ := reading.SignAttested(tn.gwKey, tn.gwKey.ID(), tn.weak.ID(), temp(1, 1))
	s2, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(2, 2))
	for _, tc := range []struct {
		name string
		raw  []byte
		ok   bool
	}{{"sensor 1", s1, true}, {"weak 1 (evicts the sensor)", w1, true}, {"sensor 1 again", s1, false}, {"sensor 2", s2, true}, {"weak 1 again", w1, false}} {
		if err := gw.Ingest(ctx, "", tc.raw, "127.0.0.1"); (err == nil) != tc.ok {
			t.Errorf("%s: Ingest = %v; want ok %v", tc.name, err, tc.ok)
		}
	}
	if n := gw.Log().Size(); n != 3 {
		t.Errorf("log holds %d envelopes; want the 3 fresh ones", n)
	}
}
