package metrics

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/gateway/coap"
	"github.com/thingnet/thingnet/gateway/mqtt"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
)

// scrape GETs the registry's handler and parses the text exposition.
func scrape(t *testing.T, r *Registry) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, body)
	}
	return fams, string(body)
}

// value returns the value of name's sample whose labels include labels
// (name=value pairs), failing if there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	if f.GetHelp() == "" {
		t.Errorf("%s has no help", name)
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		default:
			t.Fatalf("%s is a %v", name, f.GetType())
		}
	}
	t.Fatalf("no sample of %s with %v", name, labels)
	return 0
}

func wantType(t *testing.T, fams map[string]*dto.MetricFamily, name string, typ dto.MetricType) {
	t.Helper()
	if f, ok := fams[name]; !ok || f.GetType() != typ {
		t.Errorf("%s: want a %v, have %v", name, typ, fams[name].GetType())
	}
}

// lint runs promlint (naming, help, units) over everything registered.
func lint(t *testing.T, r *Registry) {
	t.Helper()
	mfs, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, namespace+"_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// newLedger is a ledger with one committed block, as api's tests build it.
func newLedger(t *testing.T) *ledger.App {
	t.Helper()
	app, err := ledger.NewApp(ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	admin, _ := identity.GenerateKey(identity.Ed25519)
	g, _ := json.Marshal(ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: "acme", Admins: []string{admin.ID()}}}})
	ctx := context.Background()
	if _, err := app.InitChain(ctx, &abci.RequestInitChain{ChainId: "c", AppStateBytes: g, InitialHeight: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Commit(ctx, &abci.RequestCommit{}); err != nil {
		t.Fatal(err)
	}
	return app
}

func TestLedger(t *testing.T) {
	app := newLedger(t)
	r := New()
	r.Ledger(app)
	var bad atomic.Uint64
	r.CheckTxRejections(func() map[string]uint64 {
		return map[string]uint64{"bad_signature": bad.Load(), "unknown_device": 0}
	})

	fams, _ := scrape(t, r)
	if v := value(t, fams, "thingnet_ledger_height"); v != 1 {
		t.Errorf("height %v, want 1", v)
	}
	wantType(t, fams, "thingnet_ledger_height", dto.MetricType_GAUGE)
	if v := value(t, fams, "thingnet_ledger_signatures_verified_total"); v != float64(app.Verifications()) {
		t.Errorf("verified %v, want %d", v, app.Verifications())
	}
	wantType(t, fams, "thingnet_ledger_signatures_verified_total", dto.MetricType_COUNTER)
	if v := value(t, fams, "thingnet_ledger_checktx_rejected_total", "reason", "unknown_device"); v != 0 {
		t.Errorf("unknown_device %v, want 0", v)
	}

	// Values are read at scrape time.
	bad.Add(3)
	fams, _ = scrape(t, r)
	if v := value(t, fams, "thingnet_ledger_checktx_rejected_total", "reason", "bad_signature"); v != 3 {
		t.Errorf("bad_signature %v, want 3", v)
	}
	// The Go and process collectors are there too.
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no go_goroutines")
	}
	lint(t, r)
}

type fakeGateway struct{ st gateway.Stats }

func (f *fakeGateway) Stats() gateway.Stats { return f.st }

type fakeLog uint64

func (f fakeLog) Size() uint64 { return uint64(f) }

type fakeMQTT struct{ st mqtt.Stats }

func (f *fakeMQTT) Stats() mqtt.Stats { return f.st }

type fakeCoAP struct{ st coap.Stats }

func (f *fakeCoAP) Stats() coap.Stats { return f.st }

func TestGateway(t *testing.T) {
	g := &fakeGateway{st: gateway.Stats{Accepted: 10, Readings: 25, Rejected: 3, Limited: 4, Overloaded: 5, Offenders: 1, Erased: 6, Expired: 7, Archived: 8, ArchiveUnavailable: 2}}
	r := New()
	r.GatewaySource(g, fakeLog(25))
	fams, _ := scrape(t, r)
	for name, want := range map[string]float64{
		"thingnet_gateway_envelopes_accepted_total":  10,
		"thingnet_gateway_readings_stored_total":     25,
		"thingnet_gateway_rejected_total":            3,
		"thingnet_gateway_rate_limited_total":        4,
		"thingnet_gateway_overloaded_total":          5,
		"thingnet_gateway_offenders_total":           1,
		"thingnet_gateway_erased_total":              6,
		"thingnet_gateway_retention_dropped_total":   7,
		"thingnet_gateway_archived_total":            8,
		"thingnet_gateway_archive_unavailable_total": 2,
		"thingnet_gateway_log_size":                  25,
	} {
		if v := value(t, fams, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
		typ := dto.MetricType_COUNTER
		if !strings.HasSuffix(name, "_total") {
			typ = dto.MetricType_GAUGE
		}
		wantType(t, fams, name, typ)
	}
	g.st.Accepted = 11
	fams, _ = scrape(t, r)
	if v := value(t, fams, "thingnet_gateway_envelopes_accepted_total"); v != 11 {
		t.Errorf("accepted %v after a change, want 11", v)
	}
	lint(t, r)

	// Without a log there is no log size, and the rest still works.
	r = New()
	r.GatewaySource(g, nil)
	fams, _ = scrape(t, r)
	if _, ok := fams["thingnet_gateway_log_size"]; ok {
		t.Error("log size without a log")
	}
	value(t, fams, "thingnet_gateway_rejected_total")
}

func TestMQTT(t *testing.T) {
	m := &fakeMQTT{st: mqtt.Stats{
		ConnectionsAccepted: 7,
		ConnectionsRefused: map[string]uint64{
			mqtt.RefusedRateLimited: 1, mqtt.RefusedBadCredentials: 2, mqtt.RefusedNotAuthorized: 0,
			mqtt.RefusedClientID: 0, mqtt.RefusedUnavailable: 0, mqtt.RefusedServerBusy: 3,
		},
		ReadingsAccepted:  40,
		ReadingsDuplicate: 2,
		ReadingsRefused: map[string]uint64{
			mqtt.ReadingACL: 1, mqtt.ReadingRateLimited: 5, mqtt.ReadingRejected: 6, mqtt.ReadingOverloaded: 0, mqtt.ReadingError: 0,
		},
		RateLimited: map[string]uint64{
			mqtt.LimitConnectSource: 1, mqtt.LimitConnectDevice: 0, mqtt.LimitMessage: 5, mqtt.LimitControl: 0,
		},
		SubscribesAccepted: 8,
		SubscribesRefused:  9,
		PacketsTooLarge:    4,
	}}
	r := New()
	r.MQTTSource(m)
	fams, text := scrape(t, r)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"thingnet_mqtt_connections_accepted_total", nil, 7},
		{"thingnet_mqtt_connections_refused_total", []string{"reason", mqtt.RefusedBadCredentials}, 2},
		{"thingnet_mqtt_connections_refused_total", []string{"reason", mqtt.RefusedServerBusy}, 3},
		{"thingnet_mqtt_connections_refused_total", []string{"reason", mqtt.RefusedClientID}, 0},
		{"thingnet_mqtt_readings_accepted_total", nil, 40},
		{"thingnet_mqtt_readings_duplicate_total", nil, 2},
		{"thingnet_mqtt_readings_refused_total", []string{"reason", mqtt.ReadingRejected}, 6},
		{"thingnet_mqtt_readings_refused_total", []string{"reason", mqtt.ReadingError}, 0},
		{"thingnet_mqtt_rate_limited_total", []string{"limit", mqtt.LimitMessage}, 5},
		{"thingnet_mqtt_subscriptions_accepted_total", nil, 8},
		{"thingnet_mqtt_subscriptions_refused_total", nil, 9},
		{"thingnet_mqtt_packets_too_large_total", nil, 4},
	} {
		if v := value(t, fams, c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
		wantType(t, fams, c.name, dto.MetricType_COUNTER)
	}
	if n := len(fams["thingnet_mqtt_connections_refused_total"].GetMetric()); n != 6 {
		t.Errorf("%d refusal reasons, want 6", n)
	}
	if !strings.Contains(text, `thingnet_mqtt_connections_refused_total{reason="server_busy"} 3`) {
		t.Errorf("exposition lacks the server_busy sample:\n%s", text)
	}
	lint(t, r)
}

func TestCoAP(t *testing.T) {
	c := &fakeCoAP{st: coap.Stats{
		Datagrams: 100, Accepted: 50, Duplicates: 5,
		Refused:  map[string]uint64{coap.RefusedRateLimited: 3, coap.RefusedTooLarge: 1, coap.RefusedBusy: 2},
		Dropped:  map[string]uint64{coap.DroppedMalformed: 4, coap.DroppedPing: 0},
		Sessions: 6, Transfers: 2, InFlight: 1,
	}}
	r := New()
	r.CoAPSource(c)
	fams, _ := scrape(t, r)
	for _, x := range []struct {
		name   string
		labels []string
		want   float64
		typ    dto.MetricType
	}{
		{"thingnet_coap_datagrams_received_total", nil, 100, dto.MetricType_COUNTER},
		{"thingnet_coap_readings_accepted_total", nil, 50, dto.MetricType_COUNTER},
		{"thingnet_coap_readings_duplicate_total", nil, 5, dto.MetricType_COUNTER},
		{"thingnet_coap_requests_refused_total", []string{"reason", coap.RefusedRateLimited}, 3, dto.MetricType_COUNTER},
		{"thingnet_coap_requests_refused_total", []string{"reason", coap.RefusedBusy}, 2, dto.MetricType_COUNTER},
		{"thingnet_coap_datagrams_dropped_total", []string{"reason", coap.DroppedMalformed}, 4, dto.MetricType_COUNTER},
		{"thingnet_coap_datagrams_dropped_total", []string{"reason", coap.DroppedPing}, 0, dto.MetricType_COUNTER},
		{"thingnet_coap_sessions", nil, 6, dto.MetricType_GAUGE},
		{"thingnet_coap_transfers", nil, 2, dto.MetricType_GAUGE},
		{"thingnet_coap_requests_in_flight", nil, 1, dto.MetricType_GAUGE},
	} {
		if v := value(t, fams, x.name, x.labels...); v != x.want {
			t.Errorf("%s%v = %v, want %v", x.name, x.labels, v, x.want)
		}
		wantType(t, fams, x.name, x.typ)
	}
	lint(t, r)
}

// TestAll registers every component on one Registry: no name or
// descriptor collides, and the whole exposition parses.
func TestAll(t *testing.T) {
	r := New()
	r.Ledger(newLedger(t))
	r.CheckTxRejections(func() map[string]uint64 { return map[string]uint64{"bad_signature": 0} })
	r.GatewaySource(&fakeGateway{}, fakeLog(0))
	r.MQTTSource(&fakeMQTT{})
	r.CoAPSource(&fakeCoAP{})
	fams, _ := scrape(t, r)
	for _, name := range []string{
		"thingnet_ledger_height", "thingnet_gateway_log_size", "thingnet_mqtt_connections_accepted_total",
		"thingnet_coap_sessions",
	} {
		value(t, fams, name)
	}
	lint(t, r)

	// A component registered twice is a programming error.
	defer func() {
		if recover() == nil {
			t.Error("registering the MQTT collector twice did not panic")
		}
	}()
	r.MQTTSource(&fakeMQTT{})
}
