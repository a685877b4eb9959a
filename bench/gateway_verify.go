package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
)

// gwVerifyBatch is the batch size of the raw verification rate: the gateway's
// largest batch (gateway.Config.MaxBatch's default).
const gwVerifyBatch = 1024

// measureVerify measures the raw Ed25519 verification rate of one
// goroutine (one core) over 1,024 of the benchmark's own one-reading
// envelopes: as an identity.Batch of 1,024, and one by one with
// PublicKey.Verify, each for d.
func measureVerify(w *gatewayWorkload, pool [][][]byte, d time.Duration) (VerifyRate, error) {
	type sig struct {
		pub      identity.PublicKey
		tbs, sig []byte
	}
	var sigs []sig
	for k := 0; len(sigs) < gwVerifyBatch; k++ {
		added := false
		for dev, envs := range pool {
			if k >= len(envs) || len(sigs) == gwVerifyBatch {
				continue
			}
			env, err := reading.Decode(envs[k])
			if err != nil {
				return VerifyRate{}, err
			}
			tbs, err := env.ToBeSigned()
			if err != nil {
				return VerifyRate{}, err
			}
			sigs = append(sigs, sig{w.devices[dev].Public(), tbs, env.Sign1.Signature})
			added = true
		}
		if !added {
			// Fewer envelopes than a batch (tiny configurations): repeat them.
			sigs = append(sigs, sigs[:min(len(sigs), gwVerifyBatch-len(sigs))]...)
		}
	}
	runtime.GC()
	var r VerifyRate
	n, start := 0, time.Now()
	for time.Since(start) < d || n == 0 {
		b := identity.NewBatch(len(sigs))
		for _, s := range sigs {
			b.Add(s.pub, s.tbs, s.sig)
		}
		if ok, _ := b.Verify(); !ok {
			return r, fmt.Errorf("bench: a reading signature does not verify")
		}
		n += len(sigs)
	}
	r.BatchPerS = float64(n) / time.Since(start).Seconds()
	n, start = 0, time.Now()
	for time.Since(start) < d || n == 0 {
		for _, s := range sigs[:64] {
			if err := s.pub.Verify(s.tbs, s.sig); err != nil {
				return r, fmt.Errorf("bench: a reading signature does not verify: %w", err)
			}
		}
		n += 64
	}
	r.SinglePerS = float64(n) / time.Since(start).Seconds()
	return r, nil
}

// MachineDescription names the machine: OS, architecture, CPUs and their
// model, memory, Go version.
func MachineDescription() string {
	model, mem := "", ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			var kb int64
			if _, err := fmt.Sscanf(s.Text(), "MemTotal: %d kB", &kb); err == nil {
				mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
				break
			}
		}
		f.Close()
	}
	if model != "" {
		model = " " + model
	}
	return fmt.Sprintf("%s/%s, %d CPUs%s%s, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), model, mem, runtime.Version())
}
