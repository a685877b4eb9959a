package bench

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"time"
)

// Targets of issue 3 for one gateway.
const (
	TargetReadingsPerS   = 20_000          // verified readings/s
	TargetMosquittoRatio = 0.5             // of plain Mosquitto's QoS 1 rate
	TargetAnchorP50      = 2 * time.Second // reading-to-anchored latency
	TargetBytesPer10k    = 1000            // chain bytes per 10,000 readings
)

func gwMedian[T int | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func gwMedianOf[R any, T int | float64 | time.Duration](rs []R, f func(R) T) T {
	xs := make([]T, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return gwMedian(xs)
}

// GatewayMedians are the medians over rounds of one variant.
type GatewayMedians struct {
	Batch                     int
	Sealed                    bool
	PayloadBytes              float64
	MosquittoMsgs             float64 // PUBACKs/s; 0 if not run
	MosquittoPMsgs            float64 // with persistence; 0 if not run
	GatewayMsgs, GatewayReads float64
	P50, P99                  time.Duration
	BytesPer10k               float64
	AnchorBytesPerTx          float64
	Failed, AckedMissing      int     // totals over rounds
	Exhausted                 int     // devices out of readings, total over rounds
	MosquittoCPU, GatewayCPU  float64 // machine CPU busy in the window, 0..1
	MosquittoCores            float64 // CPU used by the benchmark and broker processes, cores
	GatewayCores              float64
	MochiMsgs, MochiCores     float64 // plain mochi; 0 if not run
	// CPU per acknowledged envelope in the measured window (clients and
	// server together), µs: the medians over rounds of cores / rate.
	MosquittoCPUPer, GatewayCPUPer, MochiCPUPer float64
}

// Medians summarises a variant.
func (v *GatewayVariant) Medians() GatewayMedians {
	m := GatewayMedians{Batch: v.Batch, Sealed: v.Sealed, PayloadBytes: v.PayloadBytes}
	m.MosquittoMsgs = gwMedianOf(v.Mosquitto, func(r LoadRun) float64 { return r.EnvelopesPerS })
	m.MosquittoPMsgs = gwMedianOf(v.MosquittoP, func(r LoadRun) float64 { return r.EnvelopesPerS })
	m.GatewayMsgs = gwMedianOf(v.Gateway, func(r GatewayRun) float64 { return r.EnvelopesPerS })
	m.GatewayReads = gwMedianOf(v.Gateway, func(r GatewayRun) float64 { return r.ReadingsPerS })
	m.MosquittoCPU = gwMedianOf(v.Mosquitto, func(r LoadRun) float64 { return r.CPUBusy })
	m.GatewayCPU = gwMedianOf(v.Gateway, func(r GatewayRun) float64 { return r.CPUBusy })
	m.MosquittoCores = gwMedianOf(v.Mosquitto, func(r LoadRun) float64 { return r.CPUCores })
	m.GatewayCores = gwMedianOf(v.Gateway, func(r GatewayRun) float64 { return r.CPUCores })
	m.MochiMsgs = gwMedianOf(v.Mochi, func(r LoadRun) float64 { return r.EnvelopesPerS })
	m.MochiCores = gwMedianOf(v.Mochi, func(r LoadRun) float64 { return r.CPUCores })
	m.MosquittoCPUPer = gwMedianOf(v.Mosquitto, LoadRun.cpuPerEnvelope)
	m.MochiCPUPer = gwMedianOf(v.Mochi, LoadRun.cpuPerEnvelope)
	m.GatewayCPUPer = gwMedianOf(v.Gateway, func(r GatewayRun) float64 { return r.cpuPerEnvelope() })
	m.P50 = gwMedianOf(v.Gateway, func(r GatewayRun) time.Duration { return r.P50 })
	m.P99 = gwMedianOf(v.Gateway, func(r GatewayRun) time.Duration { return r.P99 })
	m.BytesPer10k = gwMedianOf(v.Gateway, func(r GatewayRun) float64 { return r.BytesPer10k })
	m.AnchorBytesPerTx = gwMedianOf(v.Gateway, func(r GatewayRun) float64 {
		if r.AnchorTxs == 0 {
			return 0
		}
		return float64(r.AnchorBytes) / float64(r.AnchorTxs)
	})
	for _, r := range v.Gateway {
		m.Failed += r.Failed
		m.AckedMissing += r.AckedMissing
		m.Exhausted += r.ExhaustedPools
	}
	for _, r := range v.Mosquitto {
		m.Failed += r.Failed
	}
	return m
}

// cpuPerEnvelope is the CPU time used per envelope acknowledged in the
// measured window, in µs (0 if none was).
func (r LoadRun) cpuPerEnvelope() float64 {
	if r.EnvelopesPerS <= 0 {
		return 0
	}
	return r.CPUCores / r.EnvelopesPerS * 1e6
}

// WriteReport prints the medians, the ratios to the baseline and to the
// raw verification rate, and each target of issue 3, met or not.
func (r *GatewayReport) WriteReport(w io.Writer) {
	c := r.Config
	base := c.baselineName()
	what := map[string]string{TransportMQTT: "MQTT 3.1.1 QoS 1", TransportCoAP: "CoAP confirmable POSTs", TransportHTTP: "HTTP/1.1 POSTs"}[c.Transport]
	fmt.Fprintf(w, "\nthingnet gateway (fsync on, 1 validator) vs %s: %d devices, %s, %d in flight per client,\n",
		base, c.Devices, what, c.Window)
	fmt.Fprintf(w, "%s measured after %s warm-up, anchor interval %s, anchor budget %d B per 10,000 entries, medians of %d round(s)\n", c.Duration, c.Warmup, c.AnchorInterval, c.AnchorBudget, c.Rounds)
	if c.Rate > 0 {
		fmt.Fprintf(w, "paced load: %d envelopes/s over all devices\n", c.Rate)
	}
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	if r.MosquittoMissing != "" {
		fmt.Fprintf(w, "BASELINE NOT RUN: %s\n", r.MosquittoMissing)
	} else if c.Transport != TransportMQTT {
		fmt.Fprintf(w, "baseline: %s, in this process\n", r.MosquittoVersion)
	} else {
		fmt.Fprintf(w, "baseline: %s, anonymous, persistence off\n", r.MosquittoVersion)
	}
	vb := gwMedianOf(r.Verify, func(v VerifyRate) float64 { return v.BatchPerS })
	vs := gwMedianOf(r.Verify, func(v VerifyRate) float64 { return v.SinglePerS })

	fmt.Fprintf(w, "\n%-22s %8s %14s %14s %14s %8s %10s %10s %12s\n",
		"readings/envelope", "payload", "baseline", "gateway", "gateway", "gw/base", "anchored", "anchored", "chain bytes")
	fmt.Fprintf(w, "%-22s %8s %14s %14s %14s %8s %10s %10s %12s\n",
		"", "bytes", "msg/s", "msg/s", "readings/s", "", "p50", "p99", "/10k rdgs")
	var ms []GatewayMedians
	for _, v := range r.Variants {
		m := v.Medians()
		ms = append(ms, m)
		mosq, ratio := "-", "-"
		if m.MosquittoMsgs > 0 {
			mosq = fmt.Sprintf("%.0f", m.MosquittoMsgs)
			ratio = fmt.Sprintf("%.2f", m.GatewayMsgs/m.MosquittoMsgs)
		}
		fmt.Fprintf(w, "%-22s %8.0f %14s %14.0f %14.0f %8s %10v %10v %12.0f\n",
			strconv.Itoa(m.Batch)+map[bool]string{true: " sealed"}[m.Sealed], m.PayloadBytes, mosq, m.GatewayMsgs, m.GatewayReads, ratio,
			m.P50.Round(time.Millisecond), m.P99.Round(time.Millisecond), m.BytesPer10k)
		if m.MosquittoPMsgs > 0 {
			fmt.Fprintf(w, "%-22s %8s %14.0f   (mosquitto with persistence on)\n", "", "", m.MosquittoPMsgs)
		}
	}
	for _, m := range ms {
		if !m.Sealed {
			continue
		}
		for _, p := range ms {
			if !p.Sealed && p.Batch == m.Batch && p.GatewayReads > 0 {
				fmt.Fprintf(w, "sealed vs plaintext, %d reading(s)/envelope: %.0f vs %.0f readings/s through the gateway = %.2f×\n", m.Batch, m.GatewayReads, p.GatewayReads, m.GatewayReads/p.GatewayReads)
			}
		}
	}
	fmt.Fprintf(w, "\nraw Ed25519 verification, one core: batch of 1,024 %.0f/s; one by one %.0f/s\n", vb, vs)
	for _, m := range ms {
		fmt.Fprintf(w, "  %2d reading(s)/envelope: gateway envelopes/s = %.2f of the one-core batch rate; readings/s = %.2f of it\n",
			m.Batch, m.GatewayMsgs/vb, m.GatewayReads/vb)
	}
	for _, m := range ms {
		fmt.Fprintf(w, "  %2d reading(s)/envelope: anchor txs of %.0f bytes on average\n", m.Batch, m.AnchorBytesPerTx)
	}
	fmt.Fprintf(w, "CPU used in the measured window by the benchmark (clients, gateway, ledger node) and the broker, of %d cores; and the whole machine's busy share:\n", runtime.NumCPU())
	for _, m := range ms {
		mosq := "-"
		if m.MosquittoMsgs > 0 {
			mosq = fmt.Sprintf("%.2f cores (machine %.0f%%)", m.MosquittoCores, 100*m.MosquittoCPU)
		}
		fmt.Fprintf(w, "  %2d reading(s)/envelope: %s run %s, gateway run %.2f cores (machine %.0f%%)\n", m.Batch, base, mosq, m.GatewayCores, 100*m.GatewayCPU)
	}
	fmt.Fprintln(w, "CPU per acknowledged envelope (the same sum over the window's acknowledgements; medians), and the rate ratio at equal CPU:")
	for _, m := range ms {
		line := fmt.Sprintf("  %2d reading(s)/envelope: gateway %.1f µs", m.Batch, m.GatewayCPUPer)
		if m.MosquittoCPUPer > 0 {
			line += fmt.Sprintf(", %s %.1f µs (equal-CPU ratio %.2f)", base, m.MosquittoCPUPer, m.MosquittoCPUPer/m.GatewayCPUPer)
		}
		if m.MochiCPUPer > 0 {
			line += fmt.Sprintf(", plain mochi %.0f msg/s %.1f µs", m.MochiMsgs, m.MochiCPUPer)
		}
		fmt.Fprintln(w, line)
	}
	bad := false
	for _, m := range ms {
		if m.Failed > 0 || m.AckedMissing > 0 || m.Exhausted > 0 {
			bad = true
			fmt.Fprintf(w, "WARNING (%d reading(s)/envelope): %d publishes without PUBACK, %d PUBACKed envelopes missing from the log, %d devices ran out of pre-signed readings (rate is a lower bound: raise --max-rate)\n",
				m.Batch, m.Failed, m.AckedMissing, m.Exhausted)
		}
	}
	if !bad {
		fmt.Fprintln(w, "every PUBACKed envelope is in the gateway's data log; no publish failed")
	}

	fmt.Fprintln(w, "\ntargets (issue 3):")
	yes := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	for _, m := range ms {
		fmt.Fprintf(w, "  %2d reading(s)/envelope: >= %d verified readings/s: %.0f, %s\n", m.Batch, TargetReadingsPerS, m.GatewayReads, yes(m.GatewayReads >= TargetReadingsPerS))
		if m.MosquittoMsgs > 0 {
			ratio := m.GatewayMsgs / m.MosquittoMsgs
			fmt.Fprintf(w, "  %2d reading(s)/envelope: >= 50%% of the %s rate: %.0f%%, %s\n", m.Batch, base, 100*ratio, yes(ratio >= TargetMosquittoRatio))
		} else {
			fmt.Fprintf(w, "  %2d reading(s)/envelope: >= 50%% of the %s rate: not measured (no baseline)\n", m.Batch, base)
		}
		fmt.Fprintf(w, "  %2d reading(s)/envelope: anchoring p50 <= 2 s: %v, %s\n", m.Batch, m.P50.Round(time.Millisecond), yes(m.P50 > 0 && m.P50 <= TargetAnchorP50))
		fmt.Fprintf(w, "  %2d reading(s)/envelope: <= 1 KB chain per 10,000 readings: %.0f B, %s\n", m.Batch, m.BytesPer10k, yes(m.BytesPer10k <= TargetBytesPer10k))
	}
}
