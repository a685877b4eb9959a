package device_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/record"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/lightclient"
)

// net is one devnet shared by the tests of this package (starting one
// takes seconds on a loaded machine).
type testNet struct {
	d     *devnet.Devnet
	admin *identity.Key
	trust lightclient.TrustOptions
}

var (
	sharedOnce sync.Once
	shared     *testNet
	sharedErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.d.Stop()
		os.RemoveAll(shared.d.Home())
	}
	os.Exit(code)
}

func startNet(t testing.TB) *testNet {
	t.Helper()
	sharedOnce.Do(func() {
		home, err := os.MkdirTemp("", "device-test-")
		if err != nil {
			sharedErr = err
			return
		}
		base, err := chain.FreePortBase(4)
		if err != nil {
			sharedErr = err
			return
		}
		lvl := slog.LevelError
		if testing.Verbose() {
			lvl = slog.LevelWarn
		}
		// Every simulated device sends from 127.0.0.1: the gateways'
		// per-address limit (10 envelopes/s by default, a defence against
		// one address flooding) is raised as `thingnet bench fleet` does,
		// or a fleet's readings and configuration reports are refused
		// (rate_limited) and retried a wake later, and the fleet
		// benchmarks measure the limit.
		d, err := devnet.Start(devnet.Config{Home: home, BasePort: base, FastBlocks: true, NoSync: true,
			SourceLimits: devnet.SourceLimitsFor(2000, 4000),
			Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))})
		if err != nil {
			sharedErr = err
			return
		}
		tn := &testNet{d: d}
		shared = tn
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if sharedErr = d.WaitForHeight(ctx, 3); sharedErr != nil {
			return
		}
		if tn.admin, sharedErr = devnet.Keystore(home).Load(devnet.DemoAdminKey, nil); sharedErr != nil {
			return
		}
		h, err := client.New(d.APIURL(0)).Header(ctx, 2)
		if err != nil {
			sharedErr = err
			return
		}
		tn.trust = lightclient.TrustOptions{Height: 2, Hash: h.SignedHeader.Hash(), Period: 24 * time.Hour}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (tn *testNet) gw(i int) device.Gateway {
	return device.Gateway{API: tn.d.APIURL(i), MQTT: tn.d.MQTTAddr(i), CoAP: tn.d.CoAPAddr(i)}
}

// register registers a new device of the demo organisation.
func (tn *testNet) register(t testing.TB, alg identity.Algorithm) *identity.Key {
	t.Helper()
	return tn.registerIn(t, alg, "sensor")
}

// registerIn registers a new device of class in the demo organisation.
// Tests that publish class-wide records (releases, approvals) use a class
// of their own, so that they hold under -count=N on the shared network.
func (tn *testNet) registerIn(t testing.TB, alg identity.Algorithm, class string) *identity.Key {
	t.Helper()
	k, err := identity.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	proof, _ := k.Sign(record.PossessionMessage(tn.d.ChainID(), devnet.DemoOrg, k.ID()))
	tn.send(t, tn.admin, &record.DeviceRegister{Org: devnet.DemoOrg, Device: k.ID(), Class: class, Proof: proof})
	return k
}

func (tn *testNet) send(t testing.TB, k *identity.Key, m record.Msg) {
	t.Helper()
	ctx := ctxT(t)
	res, err := client.New(tn.d.APIURL(0)).Send(ctx, k, "", m, true)
	if err != nil {
		t.Fatalf("%s: %v", m.Kind(), err)
	}
	// Every node's ledger, so every gateway a device may ask, has applied
	// it (the block store is written before the application commits).
	for i := range tn.d.Size() {
		for a := tn.d.App(i); a == nil || a.Height() < res.Height; a = tn.d.App(i) {
			select {
			case <-ctx.Done():
				t.Fatalf("node %d did not apply block %d", i, res.Height)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// deadGateway is an address nothing listens on.
func deadGateway(t *testing.T) device.Gateway {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	addr := s.URL
	s.Close()
	return device.Gateway{API: addr, MQTT: strings.TrimPrefix(addr, "http://"), CoAP: strings.TrimPrefix(addr, "http://")}
}

// lie is a way for a gateway to lie.
type lie string

const (
	lieHeader     lie = "forged header"       // a header with another app hash, under the validators' commit
	lieProof      lie = "wrong state proof"   // a device record says another status than the proof proves
	lieValidators lie = "stale validator set" // the validator set sent with headers is not the one that signed them
)

// liar is an device.HTTP proxy in front of a real node's API that tampers with
// headers or proofs, and passes everything else through.
func liar(t *testing.T, upstream string, how lie) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(upstream)
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(resp *http.Response) error {
		path := resp.Request.URL.Path
		if resp.StatusCode != http.StatusOK && (resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(path, "/v1/devices/")) {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		switch {
		case how == lieHeader && strings.HasPrefix(path, "/v1/headers/"):
			body = editJSON(t, body, func(m map[string]any) {
				sh, _ := m["signed_header"].(map[string]any)
				if h, ok := sh["header"].(map[string]any); ok {
					h["app_hash"] = strings.Repeat("AB", 32)
				}
			})
		case how == lieValidators && strings.HasPrefix(path, "/v1/headers/"):
			body = editJSON(t, body, func(m map[string]any) {
				vs, _ := m["validators"].([]any)
				if len(vs) == 0 {
					return
				}
				if v, ok := vs[0].(map[string]any); ok {
					p, _ := strconv.ParseInt(fmt.Sprint(v["voting_power"]), 10, 64)
					v["voting_power"] = strconv.FormatInt(p+5, 10)
				}
			})
		case how == lieProof && strings.HasPrefix(path, "/v1/devices/") && resp.Request.URL.Query().Get("prove") == "true":
			body = editJSON(t, body, func(m map[string]any) {
				pr, ok := m["proof"].(map[string]any)
				if !ok || pr["value"] == nil {
					return
				}
				raw, _ := base64.StdEncoding.DecodeString(pr["value"].(string))
				var d record.Device
				if record.Unmarshal(raw, &d) != nil {
					return
				}
				if d.Status == record.StatusActive {
					d.Status = record.StatusSuspended
				} else {
					d.Status = record.StatusActive
				}
				raw, _ = record.Marshal(&d)
				pr["value"] = base64.StdEncoding.EncodeToString(raw)
			})
		}
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s
}

func editJSON(t *testing.T, body []byte, edit func(map[string]any)) []byte {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("liar: decoding %s: %v", body, err)
		return body
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Errorf("liar: %v", err)
		return body
	}
	return out
}

// staleLiar is a proxy in front of a real node's API that answers record
// reads from the state after block height, an old but genuine state (say,
// when a since revoked sender was still active).
func staleLiar(t *testing.T, upstream string, height int64) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(upstream)
	p := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		if strings.HasPrefix(r.In.URL.Path, "/v1/devices/") {
			q := r.Out.URL.Query()
			q.Set("height", strconv.FormatInt(height, 10))
			r.Out.URL.RawQuery = q.Encode()
		}
	}}
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s
}
