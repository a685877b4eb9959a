package gateway

import (
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/ratelimit"
	"github.com/thingnet/thingnet/reading"
)

// TestSourceLimits: many devices behind one address (here two, on
// loopback) pass a raised per-source limit, while each device stays bound
// by the per-device limit; with no SourceLimits the address gets the
// device limits, as before.
func TestSourceLimits(t *testing.T) {
	tn := startTestNet(t)
	slow := func(burst int) ratelimit.Limits {
		l := ratelimit.DefaultLimits()
		l.MsgsPerSec, l.Burst = 0.001, burst // no refill during the test
		return l
	}
	use := func(name string, c Config) {
		c.Dir, c.Key = filepath.Join(tn.dir, name), tn.gwKey
		gw, err := New(c, NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gw.Close() })
		tn.gw = gw // tn's routes forward to it
	}
	sensorSeq, weakSeq := uint64(100), uint64(100)
	sensor := func() error {
		sensorSeq++
		raw, _ := reading.Sign(tn.sensor, tn.sensor.ID(), temp(sensorSeq, 20))
		_, err := tn.post(t, raw)
		return err
	}
	weak := func() error {
		weakSeq++
		raw, _ := reading.SignAttested(tn.gwKey, tn.gwKey.ID(), tn.weak.ID(), temp(weakSeq, 5))
		_, err := tn.post(t, raw)
		return err
	}
	status := func(err error) int {
		var e *api.Error
		if errors.As(err, &e) {
			return e.Status
		}
		return 0
	}

	use("raised", Config{Limits: slow(3), SourceLimits: slow(100)})
	for i := range 3 {
		if err := sensor(); err != nil {
			t.Fatalf("sensor envelope %d within its burst: %v", i+1, err)
		}
	}
	err := sensor()
	if err == nil || status(err) == http.StatusTooManyRequests || !strings.Contains(err.Error(), "device") {
		t.Fatalf("sensor's 4th envelope: %v; want a refusal by the per-device limit", err)
	}
	for i := range 3 { // the same address, another device: the address has room
		if err := weak(); err != nil {
			t.Fatalf("second device's envelope %d from the same address: %v", i+1, err)
		}
	}

	use("default", Config{Limits: slow(3)})
	for range 3 {
		if err := sensor(); err != nil {
			t.Fatal(err)
		}
	}
	if err := weak(); status(err) != http.StatusTooManyRequests || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("with SourceLimits unset, a second device from a spent address: %v; want 429 for the address", err)
	}

	bad := slow(3)
	bad.MsgsPerSec = 0
	if _, err := New(Config{Dir: filepath.Join(tn.dir, "bad"), Key: tn.gwKey, SourceLimits: bad},
		NodeLedger{App: tn.app, Comet: tn.net.Node(0).Client()}); err == nil || !strings.Contains(err.Error(), "per-source") {
		t.Fatalf("invalid SourceLimits: %v", err)
	}
}
