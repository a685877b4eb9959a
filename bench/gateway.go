package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// GatewayBenchConfig configures RunGateway. Zero fields get the defaults
// named on them.
type GatewayBenchConfig struct {
	// Transport is how the devices send: TransportMQTT (default),
	// TransportCoAP or TransportHTTP. Its baseline is Mosquitto for MQTT,
	// go-coap's own server answering 2.04 for CoAP, and a net/http server
	// answering 202 for HTTP, with the same clients.
	Transport string
	Devices   int           // clients, one per registered device; default 100
	Duration  time.Duration // measured publishing time of each run; default 10s
	Warmup    time.Duration // publishing before the measurement starts; default 1s
	// Batch is the number of readings per envelope of the batched variant;
	// default 10. 1 measures one-reading envelopes only.
	Batch int
	// Window is the number of envelopes each client keeps in flight (sent,
	// not yet acknowledged); default 32 for MQTT, 16 for CoAP, 1 for HTTP
	// (HTTP orders nothing between a client's concurrent requests, and a
	// device's sequence numbers must reach the gateway in order).
	Window int
	Rounds int // rounds of every measurement; medians are reported; default 1
	// MaxRate is the envelope rate, per second over all devices, that the
	// pre-signed readings are sized for: a device that has published all
	// of its readings stops (the report says so: the gateway's rate is then
	// a lower bound). Default 30,000; the batched variant gets MaxRate/2
	// envelopes/s.
	MaxRate int
	// Rate, if set, paces the load: envelopes/s over all devices, each
	// device publishing at Rate/Devices per second (still at most Window
	// in flight); the pre-signed readings are sized for it. 0: as fast as
	// PUBACKs come back (the saturating rate).
	Rate int
	// AnchorInterval and AnchorBudget are the gateway's; default a node's
	// defaults (gateway.DefaultAnchorInterval, gateway.DefaultAnchorBudget).
	AnchorInterval time.Duration
	AnchorBudget   int
	// BatchWindow and MaxBatch are the gateway's (gateway.Config); zero
	// leaves the gateway's defaults (2ms, 1024), as a node runs it. For
	// experiments.
	BatchWindow time.Duration
	MaxBatch    int
	// VerifyTime is how long each raw verification rate is measured;
	// default 1s.
	VerifyTime time.Duration
	// Mosquitto is the mosquitto binary for the baseline; default
	// "mosquitto" on PATH, or /usr/sbin/mosquitto. If none is found the
	// baseline is skipped and the report says so.
	Mosquitto   string
	NoMosquitto bool // skip the baseline
	// Mochi adds, for MQTT, a run against a plain mochi-mqtt broker (the
	// one the gateway embeds) in this process with an allow-all hook and
	// nothing else: what the broker alone costs per message.
	Mochi bool
	// MosquittoPersistence adds a second baseline: mosquitto with
	// persistence on (autosave every 1 s).
	MosquittoPersistence bool
	// ProfileDir, if set, receives a CPU profile of every gateway run's
	// measured window (gateway-b<batch>-r<round>.pprof). Profiles cover the
	// whole process: gateway, ledger node and the clients.
	ProfileDir string
	// Sealed adds, for every envelope size, a variant of sealed readings
	// (values sealed to an X25519 data key, reading.SealReading), measured
	// in the same rounds as the plaintext one; the report gives the ratio.
	Sealed   bool
	Progress io.Writer // progress lines; nil discards
}

func (c GatewayBenchConfig) withDefaults() GatewayBenchConfig {
	if c.Devices <= 0 {
		c.Devices = 100
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	} else if c.Warmup == 0 {
		c.Warmup = time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 10
	}
	if c.Transport == "" {
		c.Transport = TransportMQTT
	}
	if c.Window <= 0 {
		c.Window = map[string]int{TransportMQTT: 32, TransportCoAP: 16, TransportHTTP: 1}[c.Transport]
	}
	if c.Rounds <= 0 {
		c.Rounds = 1
	}
	if c.MaxRate <= 0 {
		c.MaxRate = 30_000
	}
	if c.AnchorInterval <= 0 {
		c.AnchorInterval = gateway.DefaultAnchorInterval
	}
	if c.AnchorBudget == 0 {
		c.AnchorBudget = gateway.DefaultAnchorBudget
	}
	if c.VerifyTime <= 0 {
		c.VerifyTime = time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// GatewayReport is what RunGateway measured.
type GatewayReport struct {
	Config   GatewayBenchConfig // as run, defaults filled in
	Machine  string
	Variants []*GatewayVariant
	Verify   []VerifyRate // one per round
	// MosquittoMissing says why the baseline was not run ("" if it was).
	MosquittoMissing string
	MosquittoVersion string // what the baseline is (for MQTT, mosquitto's version line)
}

// GatewayVariant is one client load (envelopes of Batch readings) measured
// against the gateway and the baseline, once per round.
type GatewayVariant struct {
	Batch        int     // readings per envelope
	Sealed       bool    // values sealed to the organisation's data key
	PayloadBytes float64 // mean envelope size
	Gateway      []GatewayRun
	Mosquitto    []LoadRun // the baseline: plain mosquitto (no persistence) for MQTT, the plain CoAP or HTTP server
	MosquittoP   []LoadRun // mosquitto with persistence (if configured)
	Mochi        []LoadRun // plain mochi-mqtt with an allow-all hook (if configured)
}

// LoadRun is one run of the client load against a broker.
type LoadRun struct {
	Envelopes      int     // PUBACKs received in the measured window
	EnvelopesPerS  float64 // PUBACKs/s over the measured window
	ReadingsPerS   float64 // EnvelopesPerS × readings per envelope
	Total          int     // PUBACKs received in the whole run (warm-up and drain too)
	Failed         int     // publishes that got no PUBACK (error or timeout)
	FirstError     string
	ExhaustedPools int // devices that published all their pre-signed readings before the end
	// CPUBusy is the fraction of the machine's CPU time (all CPUs, every
	// process: broker, clients, ledger node) that was busy in the measured
	// window; -1 if unknown.
	CPUBusy float64
	// CPUCores is the CPU time used in the measured window by this
	// process (gateway, ledger node and clients) and the broker's process,
	// per second: cores' worth.
	CPUCores float64
}

// GatewayRun is one run against the thingnet gateway.
type GatewayRun struct {
	LoadRun
	// Reading-to-anchored latency: from publishing an envelope to the
	// commit of the block holding the gateway's first anchor that covers
	// its log index, over every envelope published in the measured window
	// and acknowledged.
	P50, P99 time.Duration
	Samples  int
	// Ledger growth: the gateway's anchor txs committed during the run.
	AnchorTxs   int
	AnchorBytes int     // sum of their sizes
	Readings    uint64  // readings the gateway stored in the run
	BytesPer10k float64 // AnchorBytes / Readings × 10,000
	// AckedMissing counts PUBACKed envelopes that are not in the data log
	// (must be 0); Acked is how many were checked.
	Acked, AckedMissing int
	LogSize             uint64 // envelopes in the data log at the end
	Rejected, Limited   uint64 // gateway counters (should be 0)
	Overloaded          uint64
}

// VerifyRate is the machine's raw Ed25519 verification rate on one core,
// over the benchmark's own reading signatures.
type VerifyRate struct {
	BatchPerS  float64 // identity.Batch of 1,024
	SinglePerS float64 // PublicKey.Verify one by one
}

// gatewayWorkload is the devices and their pre-signed readings, shared by
// every run (each gateway run starts a fresh network and gateway, so the
// same sequence numbers are fresh again).
type gatewayWorkload struct {
	chainID string
	genesis json.RawMessage
	gwKey   *identity.Key
	devices []*identity.Key
}

const gatewayBenchChain = "bench-gateway"

func newGatewayWorkload(devices int) (*gatewayWorkload, error) {
	w := &gatewayWorkload{chainID: gatewayBenchChain}
	admin, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		return nil, err
	}
	if w.gwKey, err = identity.GenerateKey(identity.Ed25519); err != nil {
		return nil, err
	}
	g := ledger.GenesisState{
		Orgs:    []ledger.GenesisOrg{{ID: benchOrg, Admins: []string{admin.ID()}}},
		Devices: []ledger.GenesisDevice{{ID: w.gwKey.ID(), Org: benchOrg, Class: record.ClassGateway}},
	}
	for range devices {
		k, err := identity.GenerateKey(identity.Ed25519)
		if err != nil {
			return nil, err
		}
		w.devices = append(w.devices, k)
		g.Devices = append(g.Devices, ledger.GenesisDevice{ID: k.ID(), Org: benchOrg, Class: "sensor"})
	}
	if w.genesis, err = json.Marshal(g); err != nil {
		return nil, err
	}
	return w, nil
}

// signPool signs perDevice envelopes of batch readings for every device,
// sequence numbers from 1, on every core.
func (w *gatewayWorkload) signPool(perDevice, batch int, seal *reading.DataKey) ([][][]byte, float64, error) {
	pool := make([][][]byte, len(w.devices))
	base := time.Now().Add(-time.Hour).UnixMilli()
	var (
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
		wg       sync.WaitGroup
	)
	for range runtime.NumCPU() {
		wg.Go(func() {
			rs := make([]reading.Reading, batch)
			for d := range next {
				k := w.devices[d]
				envs := make([][]byte, perDevice)
				for i := range envs {
					for j := range rs {
						seq := uint64(i*batch + j + 1)
						v := 20 + float64(seq%100)/10
						rs[j] = reading.Reading{Seq: seq, Time: time.UnixMilli(base + int64(seq)), ContentType: "temperature/celsius", Value: &v}
						if seal != nil {
							sealed, err := reading.SealReading(rs[j], w.chainID, k.ID(), *seal)
							if err != nil {
								mu.Lock()
								if firstErr == nil {
									firstErr = err
								}
								mu.Unlock()
								return
							}
							rs[j] = sealed
						}
					}
					raw, err := reading.Sign(k, k.ID(), rs...)
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
					envs[i] = raw
				}
				pool[d] = envs
			}
		})
	}
	for d := range w.devices {
		next <- d
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, 0, fmt.Errorf("bench: signing readings: %w", firstErr)
	}
	var bytes, n float64
	for _, envs := range pool {
		for _, e := range envs {
			bytes += float64(len(e))
			n++
		}
	}
	return pool, bytes / n, nil
}

// RunGateway measures, in one run and cfg.Rounds times: the machine's raw
// Ed25519 verification rate; then for one-reading envelopes and for
// envelopes of cfg.Batch readings, the same MQTT client load (cfg.Devices
// paho clients, QoS 1, cfg.Window publishes in flight each) against a plain
// Mosquitto broker and against a thingnet gateway (fsync on) over a
// one-validator ledger network: acknowledged readings/s,
// reading-to-anchored latency, the anchors' bytes on chain, and that every
// acknowledged reading is in the gateway's log.
func RunGateway(ctx context.Context, dir string, cfg GatewayBenchConfig) (*GatewayReport, error) {
	cfg = cfg.withDefaults()
	rep := &GatewayReport{Config: cfg, Machine: MachineDescription()}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	mosq := ""
	switch {
	case cfg.Transport != TransportMQTT && cfg.Transport != TransportCoAP && cfg.Transport != TransportHTTP:
		return nil, fmt.Errorf("bench: transport %q: want %s, %s or %s", cfg.Transport, TransportMQTT, TransportCoAP, TransportHTTP)
	case cfg.NoMosquitto:
		rep.MosquittoMissing = "skipped (--no-mosquitto)"
	case cfg.Transport == TransportCoAP:
		rep.MosquittoVersion = "go-coap v3 udp.Server (its defaults) answering every request 2.04 Changed"
	case cfg.Transport == TransportHTTP:
		rep.MosquittoVersion = "net/http server reading each body and answering 202 Accepted"
	default:
		var err error
		if mosq, err = FindMosquitto(cfg.Mosquitto); err != nil {
			rep.MosquittoMissing = err.Error()
			fmt.Fprintf(cfg.Progress, "WARNING: %v; the Mosquitto baseline is skipped\n", err)
		} else {
			rep.MosquittoVersion = mosquittoVersion(mosq)
		}
	}

	fmt.Fprintf(cfg.Progress, "preparing %d devices and their signed readings\n", cfg.Devices)
	w, err := newGatewayWorkload(cfg.Devices)
	if err != nil {
		return nil, err
	}
	batches := []int{1}
	if cfg.Batch > 1 {
		batches = append(batches, cfg.Batch)
	}
	run := cfg.Warmup + cfg.Duration
	pools := map[*GatewayVariant][][][]byte{}
	var seal *reading.DataKey
	if cfg.Sealed {
		dk, err := identity.GenerateKey(identity.Ed25519)
		if err != nil {
			return nil, err
		}
		pub, err := dk.HPKEPublicKey(identity.SuiteX25519)
		if err != nil {
			return nil, err
		}
		seal = &reading.DataKey{Version: 1, Suite: identity.SuiteX25519, Key: pub}
	}
	for _, b := range batches {
		rate := float64(cfg.MaxRate)
		if b > 1 {
			rate /= 2
		}
		if cfg.Rate > 0 {
			rate = float64(cfg.Rate)
		}
		per := int(math.Ceil(rate*run.Seconds()/float64(cfg.Devices))) + cfg.Window
		keys := []*reading.DataKey{nil}
		if seal != nil {
			keys = append(keys, seal)
		}
		for _, sk := range keys {
			start := time.Now()
			pool, size, err := w.signPool(per, b, sk)
			if err != nil {
				return nil, err
			}
			v := &GatewayVariant{Batch: b, PayloadBytes: size, Sealed: sk != nil}
			pools[v] = pool
			rep.Variants = append(rep.Variants, v)
			fmt.Fprintf(cfg.Progress, "  %d envelopes of %d %sreading(s) per device, %.0f bytes each, made in %v\n", per, b, sealedWord(v.Sealed), size, time.Since(start).Round(time.Millisecond))
		}
	}

	for r := range cfg.Rounds {
		v, err := measureVerify(w, pools[rep.Variants[0]], cfg.VerifyTime)
		if err != nil {
			return rep, err
		}
		rep.Verify = append(rep.Verify, v)
		fmt.Fprintf(cfg.Progress, "round %d  raw Ed25519 verify, one core: batch of 1024 %.0f/s, one by one %.0f/s\n", r+1, v.BatchPerS, v.SinglePerS)
		order := slices.Clone(rep.Variants)
		if cfg.Sealed && r%2 == 1 {
			// Sealed before plaintext every other round: neither always
			// runs on the machine the other one left.
			slices.Reverse(order)
		}
		for _, vr := range order {
			pool := pools[vr]
			if rep.MosquittoVersion != "" && !vr.Sealed { // the baseline does not depend on the bytes
				res, err := runBaselineLoad(ctx, dir, mosq, w, pool, vr.Batch, cfg)
				if err != nil {
					return rep, fmt.Errorf("round %d %s, batch %d: %w", r+1, cfg.baselineName(), vr.Batch, err)
				}
				vr.Mosquitto = append(vr.Mosquitto, res)
				fmt.Fprintf(cfg.Progress, "round %d  batch %-3d %-7s %-18s %s\n", r+1, vr.Batch, sealedWord(vr.Sealed), cfg.baselineName(), res)
				if cfg.Mochi && cfg.Transport == TransportMQTT {
					srv, err := startPlainMochi()
					if err != nil {
						return rep, err
					}
					l := &clientLoad{addr: srv.addr, w: w, pool: pool, batch: vr.Batch, cfg: cfg, cycle: true}
					res, err := l.run(ctx)
					if err = errors.Join(err, srv.stop()); err != nil {
						return rep, fmt.Errorf("round %d plain mochi, batch %d: %w", r+1, vr.Batch, err)
					}
					vr.Mochi = append(vr.Mochi, res)
					fmt.Fprintf(cfg.Progress, "round %d  batch %-3d plain mochi        %s\n", r+1, vr.Batch, res)
				}
				if cfg.MosquittoPersistence && cfg.Transport == TransportMQTT {
					res, err := runMosquittoLoad(ctx, dir, mosq, true, w, pool, vr.Batch, cfg)
					if err != nil {
						return rep, fmt.Errorf("round %d mosquitto (persistence), batch %d: %w", r+1, vr.Batch, err)
					}
					vr.MosquittoP = append(vr.MosquittoP, res)
					fmt.Fprintf(cfg.Progress, "round %d  batch %-3d mosquitto persist  %s\n", r+1, vr.Batch, res)
				}
			}
			vcfg := cfg
			if vr.Sealed && cfg.ProfileDir != "" {
				vcfg.ProfileDir = filepath.Join(cfg.ProfileDir, "sealed")
				if err := os.MkdirAll(vcfg.ProfileDir, 0o755); err != nil {
					return rep, fmt.Errorf("bench: %w", err)
				}
			}
			res, err := runGatewayLoad(ctx, dir, w, pool, vr.Batch, r+1, vcfg)
			if err != nil {
				return rep, fmt.Errorf("round %d gateway, batch %d: %w", r+1, vr.Batch, err)
			}
			vr.Gateway = append(vr.Gateway, res)
			fmt.Fprintf(cfg.Progress, "round %d  batch %-3d %-7s thingnet gateway   %s\n", r+1, vr.Batch, sealedWord(vr.Sealed), res)
		}
	}
	return rep, nil
}

// baselineName names the baseline of cfg's transport.
func (c GatewayBenchConfig) baselineName() string {
	return map[string]string{TransportMQTT: "mosquitto", TransportCoAP: "plain go-coap", TransportHTTP: "plain net/http"}[c.Transport]
}

// runBaselineLoad runs the client load against the baseline of cfg's
// transport: mosquitto (bin) for MQTT, a plain CoAP or HTTP server in this
// process otherwise. The baselines do not look at the payloads, so a device
// that has sent all its envelopes starts them over.
func runBaselineLoad(ctx context.Context, dir, bin string, w *gatewayWorkload, pool [][][]byte, batch int, cfg GatewayBenchConfig) (LoadRun, error) {
	if cfg.Transport == TransportMQTT {
		return runMosquittoLoad(ctx, dir, bin, false, w, pool, batch, cfg)
	}
	start := startPlainHTTP
	if cfg.Transport == TransportCoAP {
		start = startPlainCoAP
	}
	srv, err := start(cfg.Window)
	if err != nil {
		return LoadRun{}, err
	}
	l := &clientLoad{addr: srv.addr, w: w, pool: pool, batch: batch, cfg: cfg, cycle: true}
	res, err := l.run(ctx)
	return res, errors.Join(err, srv.stop())
}

// sealedWord labels sealed variants.
func sealedWord(sealed bool) string {
	if sealed {
		return "sealed "
	}
	return ""
}

func (r LoadRun) String() string {
	s := fmt.Sprintf("%7.0f msg/s %8.0f readings/s  cpu %.2f cores, machine %3.0f%% busy  (%d acked in window, %d in all, %d failed)",
		r.EnvelopesPerS, r.ReadingsPerS, r.CPUCores, 100*r.CPUBusy, r.Envelopes, r.Total, r.Failed)
	if r.ExhaustedPools > 0 {
		s += fmt.Sprintf(" [%d devices ran out of readings: raise --max-rate]", r.ExhaustedPools)
	}
	if r.FirstError != "" {
		s += " first error: " + r.FirstError
	}
	return s
}

func (r GatewayRun) String() string {
	return fmt.Sprintf("%s  anchored p50 %v p99 %v (%d samples)  %d anchor txs %d B = %.0f B/10k readings  acked-missing %d/%d",
		r.LoadRun, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Samples,
		r.AnchorTxs, r.AnchorBytes, r.BytesPer10k, r.AckedMissing, r.Acked)
}

var errNoMosquitto = errors.New("mosquitto not found")
