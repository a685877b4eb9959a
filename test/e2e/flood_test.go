package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// mqttConnectPacket is an MQTT 3.1.1 CONNECT with a username and password.
func mqttConnectPacket(clientID, user, password string) []byte {
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		return append(b, s...)
	}
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 60}
	body = str(body, clientID)
	body = str(body, user)
	body = str(body, password)
	pkt := []byte{0x10}
	for l := len(body); ; {
		d := byte(l % 128)
		l /= 128
		if l > 0 {
			d |= 0x80
		}
		pkt = append(pkt, d)
		if l == 0 {
			break
		}
	}
	return append(pkt, body...)
}

// unauthFlood opens conns TCP connections to addr from the local address
// src, `workers` at a time, each sending a CONNECT with made-up
// credentials and holding the connection until ctx ends. It returns how
// many were answered CONNACK 0 (accepted).
func unauthFlood(ctx context.Context, addr, src string, conns, workers int) (tried, accepted int64) {
	var wg sync.WaitGroup
	var next, acc atomic.Int64
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	var held []net.Conn
	var mu sync.Mutex
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(conns) {
					return
				}
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					continue
				}
				c.SetDeadline(time.Now().Add(3 * time.Second))
				id := fmt.Sprintf("bot-%d", i)
				c.Write(mqttConnectPacket(id, "did:key:z6Mk"+id, "not-a-token"))
				ack := make([]byte, 4)
				if _, err := io.ReadFull(c, ack); err == nil && ack[0] == 0x20 && ack[3] == 0 {
					acc.Add(1)
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	<-ctx.Done()
	for _, c := range held {
		c.Close()
	}
	n := next.Load()
	return min(n, int64(conns)), acc.Load()
}

// latencies publishes from each device every pause at QoS 1 and records
// publish-to-PUBACK latencies and acknowledged seqs.
type latencies struct {
	mu    sync.Mutex
	phase string
	lat   map[string][]time.Duration // phase -> latencies
	acked map[string]map[uint64]bool
	fails int
}

func (l *latencies) setPhase(p string) {
	l.mu.Lock()
	l.phase = p
	l.mu.Unlock()
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*99)/100]
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestFlood: 3 legitimate devices publish at QoS 1 while an attacker on
// another address opens thousands of unauthenticated MQTT connections and
// a compromised device (whose organisation lets the gateway manage it)
// floods with valid readings. The legitimate devices' p99 latency stays
// within 2x of the baseline, none of their acknowledged readings is lost,
// no unauthenticated connection is accepted, and the compromised device is
// quarantined (suspended on the ledger) by the gateway.
func TestFlood(t *testing.T) {
	long(t)
	start := time.Now()
	legit := []string{"legit-1", "legit-2", "legit-3"}
	devs := []Device{{"rogue", "acme", "sensor"}}
	for _, d := range legit {
		devs = append(devs, Device{d, "acme", "sensor"})
	}
	n := StartNet(t, Manifest{Name: "flood", Validators: 4, Gateways: []int{0}, Orgs: []string{"acme"}, Devices: devs, DefaultLimits: true})
	r := result{Scenario: "flood", Invariant: "legit p99 <= 2x baseline; 0 acked lost; rogue quarantined"}
	defer func() { report(t, start, r) }()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rogue := n.Key("rogue")
	// The organisation's policy: its gateways may quarantine this device.
	n.MustCLI("grant", "add", "--key", "acme-admin", "--grantor", "org:acme", "--subject", "device:"+n.Nodes[0].GatewayID,
		"--action", "manage", "--resource", "device:"+rogue.ID())

	l := &latencies{phase: "baseline", lat: map[string][]time.Duration{}, acked: map[string]map[uint64]bool{}}
	pctx, pcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, name := range legit {
		k := n.Key(name)
		l.acked[k.ID()] = map[uint64]bool{}
		c, err := mqttConnect(n.Nodes[0].MQTT, k.ID(), n.deviceToken(k, k.ID()))
		if err != nil {
			t.Fatalf("%s cannot connect: %v", name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Disconnect(0)
			for seq := uint64(1); pctx.Err() == nil; seq++ {
				v := float64(seq)
				raw, _ := reading.Sign(k, k.ID(), reading.Reading{Seq: seq, Time: time.Now(), ContentType: "count", Value: &v})
				t0 := time.Now()
				tok := c.Publish(gateway.ReadingsTopic(k.ID()), 1, false, raw)
				ok := tok.WaitTimeout(10*time.Second) && tok.Error() == nil
				d := time.Since(t0)
				l.mu.Lock()
				if ok {
					l.acked[k.ID()][seq] = true
					l.lat[l.phase] = append(l.lat[l.phase], d)
				} else {
					l.fails++
				}
				l.mu.Unlock()
				time.Sleep(250 * time.Millisecond)
			}
		}()
	}
	time.Sleep(15 * time.Second)

	// The attack.
	l.setPhase("attack")
	actx, acancel := context.WithTimeout(ctx, 20*time.Second)
	defer acancel()
	var floodTried, floodAccepted int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		floodTried, floodAccepted = unauthFlood(actx, n.Nodes[0].MQTT, n.AttackerIP, 3000, 32)
	}()
	var roguePub, rogueAcked atomic.Int64
	quarantined := make(chan time.Duration, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var c paho.Client
		for seq := uint64(1); actx.Err() == nil; seq++ {
			if c == nil || !c.IsConnectionOpen() {
				var err error
				if c, err = mqttConnect(n.Nodes[0].MQTT, rogue.ID(), n.deviceToken(rogue, rogue.ID())); err != nil {
					c = nil
					time.Sleep(200 * time.Millisecond)
					continue
				}
			}
			v := float64(seq)
			raw, _ := reading.Sign(rogue, rogue.ID(), reading.Reading{Seq: seq, Time: time.Now(), ContentType: "count", Value: &v})
			roguePub.Add(1)
			// As fast as it can: no waiting for the PUBACK.
			tok := c.Publish(gateway.ReadingsTopic(rogue.ID()), 1, false, raw)
			go func() {
				if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
					rogueAcked.Add(1)
				}
			}()
			time.Sleep(2 * time.Millisecond)
		}
		if c != nil {
			c.Disconnect(0)
		}
	}()
	go func() {
		t0 := time.Now()
		for ctx.Err() == nil {
			var rec struct {
				Record record.Device `json:"record"`
			}
			if err := n.Nodes[1].Client.Get(ctx, "/v1/devices/"+rogue.ID(), &rec); err == nil && rec.Record.Status == record.StatusSuspended {
				quarantined <- time.Since(t0)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	<-actx.Done()
	l.setPhase("after")
	time.Sleep(3 * time.Second)
	pcancel()
	wg.Wait()

	var quarantine time.Duration
	select {
	case quarantine = <-quarantined:
	case <-time.After(30 * time.Second):
		t.Errorf("the flooding device was not quarantined")
	}
	l.mu.Lock()
	base, att := l.lat["baseline"], l.lat["attack"]
	l.mu.Unlock()
	t.Logf("legit latency: baseline %d publishes, median %v p99 %v; under attack %d publishes, median %v p99 %v; %d failed",
		len(base), median(base), p99(base), len(att), median(att), p99(att), l.fails)
	t.Logf("unauthenticated: %d connections tried from %s, %d accepted; rogue: %d published, %d acknowledged, quarantined %v after the attack began",
		floodTried, n.AttackerIP, floodAccepted, roguePub.Load(), rogueAcked.Load(), quarantine.Round(100*time.Millisecond))
	if floodAccepted > 0 {
		t.Errorf("%d unauthenticated connections accepted", floodAccepted)
	}
	if p99(att) > 2*max(p99(base), 20*time.Millisecond) {
		t.Errorf("legit p99 under attack %v is more than 2x the baseline's %v", p99(att), p99(base))
	}
	// Every stored reading verifies, the quarantined device's too: each log
	// entry records the height at which the gateway authenticated it, and
	// the proof shows the device active there, even when the anchor came
	// after the suspension (issue 3).
	stored, bad := n.storedReadings(ctx, 0, 1)
	for _, b := range bad {
		t.Errorf("log entry %d (%s) does not verify: %v", b.Index, b.Device, b.Err)
	}
	t.Logf("the quarantined device's %d stored readings all verify", len(stored[rogue.ID()]))
	lost := 0
	for dev, seqs := range l.acked {
		for seq := range seqs {
			if stored[dev][seq] == 0 {
				lost++
				t.Errorf("acknowledged reading %s seq %d lost", dev, seq)
			}
		}
	}
	r.Load = fmt.Sprintf("3 devices 4/s; p99 %v -> %v", p99(base).Round(time.Millisecond), p99(att).Round(time.Millisecond))
	r.Faults = fmt.Sprintf("%d unauth conns + rogue device", floodTried)
	r.Inputs = fmt.Sprintf("%d rogue publishes", roguePub.Load())
	t.Logf("flood: %d legit acknowledged readings lost", lost)
}
