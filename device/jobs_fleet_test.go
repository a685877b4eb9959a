package device_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// A job over a fleet of real SDK devices (in-process, each with its own
// key, light client and gateway, against the shared 4-validator devnet)
// in 3 waves, 5% of the devices failing it: the ledger aborts it when the
// failures reach the threshold, counts exactly that many, and no device
// whose wave opens after the abort runs it (each proves it aborted). 200
// devices (about 25 s on a loaded 2-vCPU machine); 40 with -short.
func TestJobFleetAbortsAtThreshold(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 40
	}
	tn := startNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	class := freshName("fleetjob")
	keys := make([]*identity.Key, n)
	regs := make([]*record.DeviceRegister, n)
	for i := range keys {
		k, err := identity.GenerateKey(identity.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		proof, _ := k.Sign(record.PossessionMessage(tn.d.ChainID(), devnet.DemoOrg, k.ID()))
		keys[i], regs[i] = k, &record.DeviceRegister{Org: devnet.DemoOrg, Device: k.ID(), Class: class, Proof: proof}
	}
	api := client.New(tn.d.APIURL(0))
	if _, err := device.RegisterAll(ctx, api, tn.admin, tn.d.ChainID(), regs); err != nil {
		t.Fatal(err)
	}
	failing := func(i int) bool { return i%20 == 0 } // 5%
	threshold := uint32(max(2, 3*n/100))             // 3%: reached before all 5% have reported
	calls := make([]atomic.Int32, n)
	devs := make([]*device.Device, n)
	for i, k := range keys {
		h := device.WithCommandHandler("ping", func(context.Context, map[string]any) error {
			calls[i].Add(1)
			if failing(i) {
				return errors.New("relay stuck")
			}
			return nil
		})
		d, err := device.New(k, device.WithGateways(tn.gw(i%tn.d.Size()), tn.gw((i+1)%tn.d.Size())), device.WithChainID(tn.d.ChainID()), device.WithTrust(tn.trust), h)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		devs[i] = d
	}
	const perWave = 25
	j := tn.createJob(t, tn.admin, &record.JobCreate{Org: devnet.DemoOrg, Command: "ping", Target: record.JobTarget{Class: class},
		Waves: 3, BlocksPerWave: perWave, MaxFailures: threshold, TimeoutBlocks: 3*perWave + 200})
	registered := time.Since(start)

	// Wakes: every device not yet done runs its jobs, 16 at a time, until
	// the job has ended and every device has seen it ended.
	reported := make([]bool, n)
	wakes, retried := 0, 0
	for round := 0; ; round++ {
		p, err := api.Job(ctx, devnet.DemoOrg, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		ended := p.State != record.JobActive
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i, d := range devs {
			if reported[i] {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				res, err := d.RunJobs(ctx)
				mu.Lock()
				defer mu.Unlock()
				wakes++
				if err != nil {
					// A busy node refuses a commit wait (its subscriptions
					// are bounded): the report goes again at the next wake.
					retried++
					t.Logf("device %d: %v (again at its next wake)", i, err)
				}
				if res == nil {
					return
				}
				for _, r := range res.Ran {
					reported[i] = reported[i] || r.Reported
				}
			}()
		}
		wg.Wait()
		if t.Failed() || ctx.Err() != nil {
			t.FailNow()
		}
		if ended {
			break // every device proved the job ended in a state after its end
		}
		h := tn.d.App(0).Height()
		for tn.d.App(0).Height() < h+3 && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond) // a few blocks, for the next wave
		}
	}
	p, err := api.Job(ctx, devnet.DemoOrg, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	job := p.Job
	if job.State != record.JobAborted || job.Failed+job.Rejected != threshold {
		t.Fatalf("job = %s with %d failed, %d rejected, %d succeeded; want aborted at exactly %d failures", job.State, job.Failed, job.Rejected, job.Succeeded, threshold)
	}
	w := job.Waves()
	ran, late := 0, 0
	for i, k := range keys {
		c := calls[i].Load()
		if c > 1 {
			t.Errorf("device %d ran the job %d times", i, c)
		}
		ran += int(c)
		opens := job.Start + int64(w.WaveOf(k.ID())-1)*perWave
		if opens > job.Ended {
			late++
			if c != 0 {
				t.Errorf("device %d of wave %d (opens at %d) ran the job aborted at %d", i, w.WaveOf(k.ID()), opens, job.Ended)
			}
		}
	}
	if got := int(job.Succeeded + job.Failed + job.Rejected); got > ran {
		t.Errorf("the ledger counts %d outcomes; %d devices ran it", got, ran)
	}
	t.Logf("%d devices, %d failing: aborted at height %d (wave %d) with %d succeeded, %d failed; %d devices ran it, %d of later waves did not; "+
		"registration %v, job %v, %d wakes (%d with an error, retried)", n, n/20, job.Ended, w.Wave(job.Ended), job.Succeeded, job.Failed, ran, late,
		registered.Round(time.Millisecond), (time.Since(start) - registered).Round(time.Millisecond), wakes, retried)
}
