package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/mesh/meshtest"
	"github.com/thingnet/thingnet/mesh/message"
)

// MeshBenchConfig sizes the messaging benchmark.
type MeshBenchConfig struct {
	Messages  int    // messages per throughput run; default 20,000
	Senders   int    // goroutines sending at once over one stream; default 64
	Latency   int    // messages sent one at a time for latency; default 2,000
	Size      int    // body bytes; default 64
	Mosquitto string // mosquitto binary; "" = find it; "-" = skip the baseline
	Rounds    int    // runs of each path, median reported; default 3
}

func (c *MeshBenchConfig) defaults() {
	if c.Messages <= 0 {
		c.Messages = 20_000
	}
	if c.Senders <= 0 {
		c.Senders = 64
	}
	if c.Latency <= 0 {
		c.Latency = 2_000
	}
	if c.Size <= 0 {
		c.Size = 64
	}
	if c.Rounds <= 0 {
		c.Rounds = 3
	}
}

// MeshPathResult is one path's figures: authorized messages delivered per
// second, and one-way latency from the sender's call to the receiver's
// handler (for direct messages also the round trip with the signed receipt).
type MeshPathResult struct {
	Path       string        `json:"path"`
	MsgsPerSec float64       `json:"msgs_per_sec"`
	P50        time.Duration `json:"p50"`
	P99        time.Duration `json:"p99"`
	RTTP50     time.Duration `json:"rtt_p50,omitempty"`
}

// MeshBenchResult holds the median of the rounds of each path.
type MeshBenchResult struct {
	Config MeshBenchConfig  `json:"config"`
	Paths  []MeshPathResult `json:"paths"`
}

// meshPair is two devices on a real ledger, A may message B, each with a
// mesh node on loopback; B records deliveries.
type meshPair struct {
	dir        string
	l          *meshtest.Ledger
	aKey, bKey *identity.Key
	a, b       *mesh.Node
	del        *delivery
}

// newMeshPair sets a pair up in a new directory under dir; B expects want
// messages.
func newMeshPair(dir string, want int) (_ *meshPair, err error) {
	p := &meshPair{del: newDelivery(want)}
	if p.dir, err = os.MkdirTemp(dir, "mesh-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.l, err = meshtest.New(p.dir, "bench"); err != nil {
		return nil, err
	}
	if p.aKey, err = p.l.Device("bench", "sensor", identity.Ed25519); err != nil {
		return nil, err
	}
	if p.bKey, err = p.l.Device("bench", "actuator", identity.Ed25519); err != nil {
		return nil, err
	}
	if err = p.l.Grant("bench", "device:"+p.aKey.ID(), message.KindMessage, "device:"+p.bKey.ID()); err != nil {
		return nil, err
	}
	auth := mesh.NewLedgerAuthority(p.l.View, func() string { return meshtest.ChainID })
	limits := mesh.DefaultPeerLimits()
	limits.MsgsPerSec, limits.Burst = 1e6, 1e6 // measure the path, not the limiter
	if p.b, err = mesh.New(mesh.Config{Key: p.bKey, Authority: auth, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoPubSub: true,
		Handler: p.del.handler, PeerLimits: limits}); err != nil {
		return nil, err
	}
	p.a, err = mesh.New(mesh.Config{Key: p.aKey, Authority: auth, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoPubSub: true})
	return p, err
}

func (p *meshPair) close() {
	for _, n := range []*mesh.Node{p.a, p.b} {
		if n != nil {
			n.Close()
		}
	}
	if p.l != nil {
		p.l.Close()
	}
	os.RemoveAll(p.dir)
}

// delivery records when each message reached the receiver's handler.
type delivery struct {
	mu   sync.Mutex
	at   map[uint64]time.Time
	n    atomic.Int64
	done chan struct{}
	want int64
}

func newDelivery(want int) *delivery {
	return &delivery{at: map[uint64]time.Time{}, done: make(chan struct{}), want: int64(want)}
}

func (d *delivery) handler(_ context.Context, m *mesh.Delivery) error {
	now := time.Now()
	d.mu.Lock()
	d.at[m.Seq] = now
	d.mu.Unlock()
	if d.n.Add(1) == d.want {
		close(d.done)
	}
	return nil
}

func (d *delivery) wait(ctx context.Context, within time.Duration) error {
	select {
	case <-d.done:
		return nil
	case <-time.After(within):
		return fmt.Errorf("bench: %d of %d messages delivered within %v", d.n.Load(), d.want, within)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// MeshBench measures signed, authorized messages between two devices: over
// a direct libp2p stream (TCP on loopback), and through a Mosquitto broker
// on the same machine with the same signed messages and the same checks at
// the receiver (the brokered baseline).
func MeshBench(ctx context.Context, dir string, cfg MeshBenchConfig, progress io.Writer) (*MeshBenchResult, error) {
	cfg.defaults()
	if progress == nil {
		progress = io.Discard
	}
	res := &MeshBenchResult{Config: cfg}
	var direct, brokered []MeshPathResult
	for r := range cfg.Rounds {
		d, err := meshDirectRound(ctx, dir, cfg)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "round %d direct:    %8.0f msg/s  p50 %v  p99 %v  rtt p50 %v\n", r+1, d.MsgsPerSec, d.P50, d.P99, d.RTTP50)
		direct = append(direct, d)
		if cfg.Mosquitto == "-" {
			continue
		}
		b, err := meshMosquittoRound(ctx, dir, cfg)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "round %d mosquitto: %8.0f msg/s  p50 %v  p99 %v\n", r+1, b.MsgsPerSec, b.P50, b.P99)
		brokered = append(brokered, b)
	}
	res.Paths = append(res.Paths, medianPath(direct))
	if len(brokered) > 0 {
		res.Paths = append(res.Paths, medianPath(brokered))
	}
	return res, nil
}

func medianPath(rs []MeshPathResult) MeshPathResult {
	med := func(f func(MeshPathResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return MeshPathResult{
		Path:       rs[0].Path,
		MsgsPerSec: med(func(r MeshPathResult) float64 { return r.MsgsPerSec }),
		P50:        time.Duration(med(func(r MeshPathResult) float64 { return float64(r.P50) })),
		P99:        time.Duration(med(func(r MeshPathResult) float64 { return float64(r.P99) })),
		RTTP50:     time.Duration(med(func(r MeshPathResult) float64 { return float64(r.RTTP50) })),
	}
}

func meshDirectRound(ctx context.Context, dir string, cfg MeshBenchConfig) (MeshPathResult, error) {
	return meshDirect(ctx, dir, cfg, 0)
}

// meshDirect: A sends to B over libp2p TCP; with linkDelay > 0 through a link
// of that latency in each direction.
func meshDirect(ctx context.Context, dir string, cfg MeshBenchConfig, linkDelay time.Duration) (MeshPathResult, error) {
	out := MeshPathResult{Path: "direct (libp2p TCP, loopback)"}
	if linkDelay > 0 {
		out.Path = fmt.Sprintf("direct, same LAN (%v RTT)", 2*linkDelay)
	}
	p, err := newMeshPair(dir, cfg.Messages+cfg.Latency)
	if err != nil {
		return out, err
	}
	defer p.close()
	a, b, del := p.a, p.b, p.del
	addr := b.Addrs()[0]
	if linkDelay > 0 {
		na, err := manet.ToNetAddr(b.Host().Addrs()[0])
		if err != nil {
			return out, err
		}
		proxy, err := newDelayProxy(na.String(), linkDelay)
		if err != nil {
			return out, err
		}
		defer proxy.Close()
		addr = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", proxy.Addr().Port, b.PeerID())
	}
	if _, err := a.Connect(ctx, addr); err != nil {
		return out, err
	}
	body := make([]byte, cfg.Size)
	compose := func() ([]byte, uint64, error) {
		env, err := a.Compose(message.Outgoing{To: p.bKey.ID(), Body: body})
		if err != nil {
			return nil, 0, err
		}
		e, err := message.Decode(env)
		if err != nil {
			return nil, 0, err
		}
		return env, e.Seq, nil
	}
	// Latency: one message at a time.
	var oneWay, rtt []time.Duration
	for range cfg.Latency {
		env, seq, err := compose()
		if err != nil {
			return out, err
		}
		start := time.Now()
		r, err := a.Send(ctx, env)
		if err != nil {
			return out, err
		}
		if err := r.Err(); err != nil {
			return out, err
		}
		rtt = append(rtt, time.Since(start))
		del.mu.Lock()
		at := del.at[seq]
		del.mu.Unlock()
		oneWay = append(oneWay, at.Sub(start))
	}
	out.P50, out.P99 = quantile(oneWay, 0.50), quantile(oneWay, 0.99)
	out.RTTP50 = quantile(rtt, 0.50)
	// Throughput: Senders goroutines, messages signed as they go.
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Senders)
	start := time.Now()
	for range cfg.Senders {
		wg.Go(func() {
			for next.Add(1) <= int64(cfg.Messages) {
				env, _, err := compose()
				if err == nil {
					var r *message.Result
					if r, err = a.Send(ctx, env); err == nil {
						err = r.Err()
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return out, err
	}
	if err := del.wait(ctx, time.Minute); err != nil {
		return out, err
	}
	out.MsgsPerSec = float64(cfg.Messages) / time.Since(start).Seconds()
	return out, nil
}

// meshMosquittoRound: A publishes the same signed messages to a Mosquitto
// broker (QoS 1), B subscribes and runs the receiver's checks (mesh
// Node.Accept: ledger status, grant, replay, signature) on each.
func meshMosquittoRound(ctx context.Context, dir string, cfg MeshBenchConfig) (MeshPathResult, error) {
	return meshMosquitto(ctx, dir, cfg, 0)
}

// meshMosquitto: through a broker; with linkDelay > 0 both clients reach it
// over a link of that latency (linkDelay) in each direction.
func meshMosquitto(ctx context.Context, dir string, cfg MeshBenchConfig, linkDelay time.Duration) (MeshPathResult, error) {
	out := MeshPathResult{Path: "brokered (Mosquitto, QoS 1, loopback)"}
	if linkDelay > 0 {
		out.Path = fmt.Sprintf("brokered, broker %v RTT away", 2*linkDelay)
	}
	bin, err := FindMosquitto(cfg.Mosquitto)
	if err != nil {
		return out, err
	}
	broker, err := startMosquitto(ctx, dir, bin, false)
	if err != nil {
		return out, err
	}
	defer broker.stop()
	brokerAddr := broker.addr
	if linkDelay > 0 {
		proxy, err := newDelayProxy(broker.addr, linkDelay)
		if err != nil {
			return out, err
		}
		defer proxy.Close()
		brokerAddr = proxy.Addr().String()
	}
	p, err := newMeshPair(dir, cfg.Messages+cfg.Latency)
	if err != nil {
		return out, err
	}
	defer p.close()
	a, b, del := p.a, p.b, p.del
	topic := "things/" + p.bKey.ID() + "/inbox"
	connect := func(id string) (paho.Client, error) {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + brokerAddr).SetClientID(id).
			SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).SetMaxResumePubInFlight(1000))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return nil, fmt.Errorf("bench: mqtt connect: %v", tok.Error())
		}
		return c, nil
	}
	sub, err := connect("receiver")
	if err != nil {
		return out, err
	}
	defer sub.Disconnect(0)
	var refused atomic.Int64
	if tok := sub.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		if r := b.Accept(ctx, [][]byte{m.Payload()})[0]; r.Status != message.StatusDelivered {
			refused.Add(1)
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return out, fmt.Errorf("bench: subscribe: %v", tok.Error())
	}
	pub, err := connect("sender")
	if err != nil {
		return out, err
	}
	defer pub.Disconnect(0)
	body := make([]byte, cfg.Size)
	var oneWay []time.Duration
	for range cfg.Latency {
		env, err := a.Compose(message.Outgoing{To: p.bKey.ID(), Body: body})
		if err != nil {
			return out, err
		}
		e, _ := message.Decode(env)
		before := del.n.Load()
		start := time.Now()
		if tok := pub.Publish(topic, 1, false, env); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return out, fmt.Errorf("bench: publish: %v", tok.Error())
		}
		for del.n.Load() == before {
			if refused.Load() > 0 {
				return out, errors.New("bench: the receiver refused a brokered message")
			}
			time.Sleep(20 * time.Microsecond)
		}
		del.mu.Lock()
		at := del.at[e.Seq]
		del.mu.Unlock()
		oneWay = append(oneWay, at.Sub(start))
	}
	out.P50, out.P99 = quantile(oneWay, 0.50), quantile(oneWay, 0.99)
	start := time.Now()
	toks := make([]paho.Token, 0, cfg.Messages)
	base := del.n.Load()
	for i := range cfg.Messages {
		env, err := a.Compose(message.Outgoing{To: p.bKey.ID(), Body: body})
		if err != nil {
			return out, err
		}
		// Keep at most Senders*8 messages between publisher and receiver:
		// Mosquitto drops QoS 1 messages beyond a subscriber's queue (1,000).
		for int64(i)-(del.n.Load()-base) > int64(cfg.Senders*8) {
			time.Sleep(20 * time.Microsecond)
		}
		toks = append(toks, pub.Publish(topic, 1, false, env))
	}
	for _, t := range toks {
		if !t.WaitTimeout(time.Minute) || t.Error() != nil {
			return out, fmt.Errorf("bench: publish: %v", t.Error())
		}
	}
	if err := del.wait(ctx, time.Minute); err != nil {
		return out, fmt.Errorf("%w (%d refused)", err, refused.Load())
	}
	out.MsgsPerSec = float64(cfg.Messages) / time.Since(start).Seconds()
	return out, nil
}

// quantile of durations (q in [0,1]); d is sorted in place.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q * float64(len(d)-1))
	return d[i]
}

// MeshDistanceConfig: the same message between two devices a few feet
// apart, directly over their LAN, or through a cloud broker.
type MeshDistanceConfig struct {
	LAN       time.Duration // one-way latency between the devices; default 250µs
	Cloud     time.Duration // one-way latency from a device to the cloud broker; default 20ms
	Messages  int           // one at a time, for latency; default 300
	Mosquitto string
}

// MeshDistance measures one-way latency (and messages/s with many in
// flight) of the direct LAN path and of the brokered path through a
// Mosquitto broker as far away as a cloud region, with emulated links.
func MeshDistance(ctx context.Context, dir string, dc MeshDistanceConfig, progress io.Writer) ([]MeshPathResult, error) {
	if dc.LAN <= 0 {
		dc.LAN = 250 * time.Microsecond
	}
	if dc.Cloud <= 0 {
		dc.Cloud = 20 * time.Millisecond
	}
	if dc.Messages <= 0 {
		dc.Messages = 300
	}
	if progress == nil {
		progress = io.Discard
	}
	cfg := MeshBenchConfig{Latency: dc.Messages, Messages: 5000, Senders: 64, Mosquitto: dc.Mosquitto}
	cfg.defaults()
	d, err := meshDirect(ctx, dir, cfg, dc.LAN)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "%s: p50 %v p99 %v, %.0f msg/s\n", d.Path, d.P50, d.P99, d.MsgsPerSec)
	b, err := meshMosquitto(ctx, dir, cfg, dc.Cloud)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "%s: p50 %v p99 %v, %.0f msg/s\n", b.Path, b.P50, b.P99, b.MsgsPerSec)
	return []MeshPathResult{d, b}, nil
}
