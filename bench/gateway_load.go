package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/identity"
)

const (
	gwConnectTimeout  = 30 * time.Second // for all clients to connect
	gwDrainTimeout    = 30 * time.Second // after the window, for the last PUBACKs
	gwConnectParallel = 8
)

// clientLoad is the client side of a run: one client per device (over
// cfg.Transport: a paho MQTT client publishing at QoS 1 to
// things/<id>/readings, a CoAP endpoint sending confirmable POSTs to /r, or
// HTTP POSTs to /v1/readings), each sending its pre-signed envelopes as fast
// as their acknowledgements come back, with up to Window in flight.
type clientLoad struct {
	addr   string // the broker's host:port, or the HTTP base URL's
	w      *gatewayWorkload
	pool   [][][]byte
	batch  int
	cfg    GatewayBenchConfig
	cycle  bool // start the pool over when it runs out (a broker that does not check sequence numbers)
	record bool // keep every envelope's publish and PUBACK times

	// onWindow, if set, is called when the measured window opens (true)
	// and closes (false).
	onWindow func(open bool)

	winStart, winEnd time.Time
	devs             []*deviceLoad

	brokerPID int // the broker's process, if not this one
}

// ownCPU is the CPU time used so far by this process (gateway, ledger node
// and clients) and the broker's process, if any.
func (l *clientLoad) ownCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if l.brokerPID > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", l.brokerPID)); err == nil {
			// Fields after the command name (which is in parentheses):
			// utime and stime are the 12th and 13th, in clock ticks (100/s).
			if _, rest, ok := strings.Cut(string(b), ") "); ok {
				if f := strings.Fields(rest); len(f) > 12 {
					ut, _ := strconv.ParseUint(f[11], 10, 64)
					st, _ := strconv.ParseUint(f[12], 10, 64)
					t += time.Duration(ut+st) * 10 * time.Millisecond
				}
			}
		}
	}
	return t
}

type deviceLoad struct {
	pubAt, ackAt []time.Time // record mode: by pool index; zero if not published / acked
	inWindow     int
	total        int
	failed       int
	exhausted    bool
	firstErr     error
}

type gwInflight struct {
	tok sent
	k   int
}

// tokens returns each device's CWT for the gateway's chain: the MQTT
// password of its CONNECT (sent to both brokers, so the clients are the same).
func (w *gatewayWorkload) tokens() ([]string, error) {
	out := make([]string, len(w.devices))
	now := time.Now()
	for i, k := range w.devices {
		tok, err := identity.NewCWT(k, k.ID(), w.chainID, now, 2*time.Hour)
		if err != nil {
			return nil, err
		}
		out[i] = identity.EncodeCWTPassword(tok)
	}
	return out, nil
}

// run connects the clients, publishes for Warmup+Duration, waits for the
// outstanding PUBACKs and disconnects.
func (l *clientLoad) run(ctx context.Context) (LoadRun, error) {
	passwords, err := l.w.tokens()
	if err != nil {
		return LoadRun{}, err
	}
	var clients []sender
	switch l.cfg.Transport {
	case TransportCoAP:
		clients, err = dialCoAP(l.addr, len(l.w.devices))
	case TransportHTTP:
		clients = httpSenders(l.addr, len(l.w.devices))
	default:
		clients, err = l.connect(ctx, passwords)
	}
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	}()
	if err != nil {
		return LoadRun{}, err
	}

	start := time.Now()
	l.winStart = start.Add(l.cfg.Warmup)
	l.winEnd = l.winStart.Add(l.cfg.Duration)
	stop := make(chan struct{})
	dctx, cancel := context.WithDeadline(ctx, l.winEnd.Add(gwDrainTimeout))
	defer cancel()
	var wg sync.WaitGroup
	l.devs = make([]*deviceLoad, len(clients))
	for d, c := range clients {
		dl := &deviceLoad{}
		if l.record {
			dl.pubAt = make([]time.Time, len(l.pool[d]))
			dl.ackAt = make([]time.Time, len(l.pool[d]))
		}
		l.devs[d] = dl
		wg.Go(func() { l.device(dctx, c, d, dl, stop) })
	}
	gwSleepUntil(ctx, l.winStart)
	if l.onWindow != nil {
		l.onWindow(true)
	}
	cpu0, own0 := readCPUTimes(), l.ownCPU()
	gwSleepUntil(ctx, l.winEnd)
	cpu1, own1 := readCPUTimes(), l.ownCPU()
	if l.onWindow != nil {
		l.onWindow(false)
	}
	close(stop)
	wg.Wait()
	if ctx.Err() != nil {
		return LoadRun{}, ctx.Err()
	}

	var r LoadRun
	for _, dl := range l.devs {
		r.Envelopes += dl.inWindow
		r.Total += dl.total
		r.Failed += dl.failed
		if dl.exhausted {
			r.ExhaustedPools++
		}
		if dl.firstErr != nil && r.FirstError == "" {
			r.FirstError = dl.firstErr.Error()
		}
	}
	r.CPUBusy = cpu1.busySince(cpu0)
	r.CPUCores = (own1 - own0).Seconds() / l.winEnd.Sub(l.winStart).Seconds()
	r.EnvelopesPerS = float64(r.Envelopes) / l.cfg.Duration.Seconds()
	r.ReadingsPerS = r.EnvelopesPerS * float64(l.batch)
	return r, nil
}

func gwSleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-time.After(time.Until(t)):
	case <-ctx.Done():
	}
}

// connect opens every device's MQTT 3.1.1 session, a few at a time.
func (l *clientLoad) connect(ctx context.Context, passwords []string) ([]sender, error) {
	clients := make([]sender, len(l.w.devices))
	errs := make([]error, len(clients))
	sem := make(chan struct{}, gwConnectParallel)
	var wg sync.WaitGroup
	for d, k := range l.w.devices {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errs[d] = ctx.Err()
				return
			}
			opts := paho.NewClientOptions().AddBroker("tcp://" + l.addr).SetProtocolVersion(4).
				SetClientID(k.ID()).SetUsername(k.ID()).SetPassword(passwords[d]).
				SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
				SetOrderMatters(false).SetKeepAlive(time.Minute).SetPingTimeout(30 * time.Second).
				SetConnectTimeout(gwConnectTimeout)
			c := paho.NewClient(opts)
			tok := c.Connect()
			if !tok.WaitTimeout(gwConnectTimeout) {
				errs[d] = fmt.Errorf("device %d: no CONNACK within %s", d, gwConnectTimeout)
				c.Disconnect(0)
				return
			}
			if err := tok.Error(); err != nil {
				errs[d] = fmt.Errorf("device %d: connect: %w", d, err)
				return
			}
			clients[d] = mqttSender{c: c, topic: gateway.ReadingsTopic(k.ID())}
		})
	}
	wg.Wait()
	return clients, errors.Join(errs...)
}

// device publishes device d's envelopes until stop, keeping up to Window
// in flight; a second goroutine waits for the PUBACKs in order.
func (l *clientLoad) device(ctx context.Context, c sender, d int, dl *deviceLoad, stop <-chan struct{}) {
	envs := l.pool[d]
	// With a paced load, envelope i of device d goes out at start +
	// (d/devices + i) × every: the devices' publishes are spread evenly.
	var every time.Duration
	start := time.Now()
	if l.cfg.Rate > 0 {
		every = time.Duration(len(l.pool)) * time.Second / time.Duration(l.cfg.Rate)
		start = start.Add(every * time.Duration(d) / time.Duration(len(l.pool)))
	}
	sem := make(chan struct{}, l.cfg.Window)
	pending := make(chan gwInflight, l.cfg.Window)
	var lost atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range pending {
			select {
			case <-p.tok.Done():
				if err := p.tok.Error(); err != nil {
					dl.failed++
					if dl.firstErr == nil {
						dl.firstErr = err
					}
					lost.Store(true)
					break
				}
				t := time.Now()
				dl.total++
				if !t.Before(l.winStart) && t.Before(l.winEnd) {
					dl.inWindow++
				}
				if l.record {
					dl.ackAt[p.k] = t
				}
			case <-ctx.Done():
				dl.failed++
				if dl.firstErr == nil {
					dl.firstErr = fmt.Errorf("no PUBACK: %w", ctx.Err())
				}
				lost.Store(true)
			}
			<-sem
		}
	}()
publish:
	for i := 0; ; i++ {
		select {
		case <-stop:
			break publish
		case sem <- struct{}{}:
		}
		select {
		case <-stop:
			break publish
		default:
		}
		if lost.Load() {
			break
		}
		if every > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * every)); wait > 0 {
				select {
				case <-stop:
					break publish
				case <-time.After(wait):
				}
			}
		}
		k := i
		if k >= len(envs) {
			if !l.cycle {
				dl.exhausted = true
				break
			}
			k = i % len(envs)
		}
		t := time.Now()
		tok := c.send(envs[k])
		if l.record {
			dl.pubAt[k] = t
		}
		pending <- gwInflight{tok: tok, k: k}
	}
	close(pending)
	<-done
}

// cpuTimes are the machine's CPU time counters (/proc/stat, all CPUs).
type cpuTimes struct{ busy, total uint64 }

func readCPUTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return cpuTimes{}
	}
	var t cpuTimes
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		t.total += v
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
	}
	return t
}

// busySince is the fraction of all CPUs' time that was busy between c0 and c
// (-1 if unknown).
func (c cpuTimes) busySince(c0 cpuTimes) float64 {
	if c.total <= c0.total {
		return -1
	}
	return float64(c.busy-c0.busy) / float64(c.total-c0.total)
}
