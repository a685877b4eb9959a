package device_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// createJob sends a job.create signed by k and returns the job, found by
// its target.
func (tn *testNet) createJob(t testing.TB, k *identity.Key, m *record.JobCreate) *record.JobRecord {
	t.Helper()
	tn.send(t, k, m)
	js, err := client.New(tn.d.APIURL(0)).Jobs(ctxT(t), m.Org)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(js) - 1; i >= 0; i-- {
		if js[i].JobCreate.Target.Class == m.Target.Class && js[i].JobCreate.Target.Label == m.Target.Label &&
			len(js[i].JobCreate.Target.Devices) == len(m.Target.Devices) && js[i].JobCreate.Command == m.Command {
			return &js[i]
		}
	}
	t.Fatalf("job %s for %s not listed", m.Command, m.Target.String())
	return nil
}

func pingJob(class string) *record.JobCreate {
	return &record.JobCreate{Org: devnet.DemoOrg, Command: "ping", Args: map[string]any{"n": 7}, Target: record.JobTarget{Class: class},
		Waves: 1, BlocksPerWave: 1, MaxFailures: 5, TimeoutBlocks: 1000}
}

// A job runs once: its handler is called with its arguments, the outcome
// is reported and counted on the ledger, and a restarted device (same
// state directory) does not run it again; a job interrupted by a restart
// is reported failed, never started twice.
func TestJobRunsOnceAcrossRestart(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	class := freshName("jobs")
	me := tn.registerIn(t, identity.Ed25519, class)
	dir := t.TempDir()
	var calls atomic.Int32
	var gotArgs atomic.Value
	ping := device.WithCommandHandler("ping", func(_ context.Context, args map[string]any) error {
		calls.Add(1)
		gotArgs.Store(args)
		return nil
	})
	open := func(dir string, h device.Option) *device.Device {
		d, err := device.New(me, device.WithGateways(tn.gw(0), tn.gw(1)), device.WithChainID(tn.d.ChainID()), device.WithTrust(tn.trust), device.WithStateDir(dir), h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	j := tn.createJob(t, tn.admin, pingJob(class))
	d := open(dir, ping)
	res, err := d.RunJobs(ctx)
	if err != nil || len(res.Ran) != 1 || res.Ran[0].Outcome != record.JobSucceeded || !res.Ran[0].Reported || calls.Load() != 1 {
		t.Fatalf("RunJobs = %+v, %v (%d calls); want job %d run once and reported", res, err, calls.Load(), j.ID)
	}
	if a, _ := gotArgs.Load().(map[string]any); a["n"] != int64(7) {
		t.Errorf("handler args = %v; want n=7", a)
	}
	// Another node counts it once it has applied the block.
	testutil.WaitFor(t, ctx, "job counted succeeded at node 1", func() bool {
		p, err := client.New(tn.d.APIURL(1)).Job(ctx, devnet.DemoOrg, j.ID)
		return err == nil && p.Job.Succeeded == 1 && p.Counts.Succeeded == 1
	})
	d.Close()
	d = open(dir, ping)
	if res, err := d.RunJobs(ctx); err != nil || len(res.Ran) != 0 || calls.Load() != 1 {
		t.Fatalf("after a restart: %+v, %v (%d calls); want nothing run again", res, err, calls.Load())
	}

	// A handler that never returns: the device "restarts" (its state
	// directory copied while the handler runs) and reports it failed.
	j2 := tn.createJob(t, tn.admin, &record.JobCreate{Org: devnet.DemoOrg, Command: "hang", Target: record.JobTarget{Class: class},
		Waves: 1, BlocksPerWave: 1, MaxFailures: 5, TimeoutBlocks: 1000})
	started, release := make(chan struct{}), make(chan struct{})
	hung := open(dir, device.WithCommandHandler("hang", func(context.Context, map[string]any) error {
		close(started)
		<-release
		return nil
	}))
	done := make(chan struct{})
	go func() { defer close(done); hung.RunJobs(ctx) }()
	<-started
	copyDir := t.TempDir()
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		if b, err := os.ReadFile(filepath.Join(dir, f.Name())); err == nil {
			os.WriteFile(filepath.Join(copyDir, f.Name()), b, 0o600)
		}
	}
	var again atomic.Int32
	after := open(copyDir, device.WithCommandHandler("hang", func(context.Context, map[string]any) error { again.Add(1); return nil }))
	res, err = after.RunJobs(ctx)
	close(release)
	<-done
	if err != nil || len(res.Ran) != 1 || res.Ran[0].ID != j2.ID || res.Ran[0].Outcome != record.JobFailed || !strings.Contains(res.Ran[0].Reason, "interrupted") || again.Load() != 0 {
		t.Fatalf("after a restart mid-job: %+v, %v (%d calls); want job %d reported failed (interrupted), not run again", res, err, again.Load(), j2.ID)
	}
}

// jobLiar is a gateway that forges job records in proofs (another
// command), or answers the proof of another key.
func jobLiar(t *testing.T, upstream string, swapKey func(key []byte) []byte) *httptest.Server {
	return proofLiar(t, upstream, swapKey, func(v []byte) []byte {
		j, err := record.DecodeJobRecord(v)
		if err != nil {
			return v
		}
		j.JobCreate.Command = "wipe"
		out, _ := record.Marshal(j)
		return out
	})
}

// A device refuses what fails its proof — a job forged by a gateway,
// another device's job index — and runs nothing from it (the gateway is
// named under Unproved when an honest one answers); it does not run a
// cancelled job, nor one a stale state shows still open; a job created
// through a "manage" grant since revoked is rejected and reported so.
func TestJobRefusals(t *testing.T) {
	tn := startNet(t)
	ctx := ctxT(t)
	class := freshName("jobr")
	me := tn.registerIn(t, identity.Ed25519, class)
	peer := tn.registerIn(t, identity.Ed25519, freshName("jobp"))
	var calls atomic.Int32
	handlers := []device.Option{
		device.WithCommandHandler("ping", func(context.Context, map[string]any) error { calls.Add(1); return nil }),
		device.WithCommandHandler("wipe", func(context.Context, map[string]any) error { calls.Add(100); return nil }),
	}
	opts := func(dir string, gws ...device.Gateway) []device.Option {
		return append([]device.Option{device.WithGateways(gws...), device.WithChainID(tn.d.ChainID()), device.WithTrust(tn.trust), device.WithStateDir(dir)}, handlers...)
	}
	// The peer (another class) has a job; this device has none of its own yet.
	peerJob := tn.createJob(t, tn.admin, &record.JobCreate{Org: devnet.DemoOrg, Command: "wipe", Target: record.JobTarget{Devices: []string{peer.ID()}},
		Waves: 1, BlocksPerWave: 1, MaxFailures: 1, TimeoutBlocks: 1000})
	j := tn.createJob(t, tn.admin, pingJob(class))
	forger := jobLiar(t, tn.d.APIURL(0), nil)
	swapper := jobLiar(t, tn.d.APIURL(0), func(k []byte) []byte {
		if bytes.Equal(k, record.JobIndexKey(devnet.DemoOrg, record.ConfigDevice, me.ID())) {
			return record.JobIndexKey(devnet.DemoOrg, record.ConfigDevice, peer.ID())
		}
		return k
	})
	for name, bad := range map[string]*httptest.Server{"forged": forger, "another device's": swapper} {
		alone, err := device.New(me, opts(t.TempDir(), device.Gateway{API: bad.URL})...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alone.RunJobs(ctx); !errors.Is(err, record.ErrBadProof) {
			t.Errorf("%s job: %v; want a proof refusal", name, err)
		}
		alone.Close()
	}
	if calls.Load() != 0 {
		t.Fatalf("a job ran from a lying gateway (%d)", calls.Load())
	}
	dir := t.TempDir()
	d, err := device.New(me, opts(dir, device.Gateway{API: forger.URL}, tn.gw(1))...)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	res, err := d.RunJobs(ctx)
	if err != nil || len(res.Ran) != 1 || res.Ran[0].ID != j.ID || res.Ran[0].Command != "ping" || calls.Load() != 1 ||
		len(res.Proved.Unproved) != 1 || res.Proved.Unproved[0] != forger.URL {
		t.Fatalf("with an honest gateway behind the forger: %+v, %v (calls %d); want ping run, the forger named", res, err, calls.Load())
	}
	for _, pj := range res.Proved.Jobs {
		if pj.Job.ID == peerJob.ID {
			t.Errorf("the peer's job %d was listed for this device", peerJob.ID)
		}
	}

	// Cancelled: proved closed, not run, not reported. A stale gateway
	// that answers from before the cancel is refused as stale.
	j2 := tn.createJob(t, tn.admin, &record.JobCreate{Org: devnet.DemoOrg, Command: "ping", Args: map[string]any{"n": 2}, Target: record.JobTarget{Class: class},
		Waves: 1, BlocksPerWave: 500, MaxFailures: 5, TimeoutBlocks: 1000})
	before := tn.d.App(0).Height()
	tn.send(t, tn.admin, &record.JobCancel{Org: devnet.DemoOrg, ID: j2.ID})
	res, err = d.RunJobs(ctx)
	if err != nil || len(res.Ran) != 0 || calls.Load() != 1 {
		t.Fatalf("after the cancel: %+v, %v (calls %d); want nothing run", res, err, calls.Load())
	}
	for tn.d.App(0).Height() < before+8 {
		select { // blocks to pass, so the old state is stale
		case <-ctx.Done():
			t.Fatal("no blocks")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if _, err := d.RunJobs(ctx); err != nil { // the device trusts a header past them
		t.Fatal(err)
	}
	stale := staleLiar(t, tn.d.APIURL(0), before)
	st, err := device.New(me, append(opts(dir, device.Gateway{API: stale.URL}), device.WithFreshness(2, 0))...)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.RunJobs(ctx); !errors.Is(err, device.ErrStale) || calls.Load() != 1 {
		t.Fatalf("from a stale state: %v (calls %d); want ErrStale and nothing run", err, calls.Load())
	}

	// Revoked right: an integrator's manage grant creates a job, then is
	// revoked before the device runs it: rejected, reported, counted.
	rival, _ := identity.GenerateKey(identity.Ed25519)
	org := freshName("integrator")
	tn.send(t, rival, &record.OrgCreate{ID: org})
	tn.send(t, tn.admin, &record.GrantAdd{Grantor: "org:" + devnet.DemoOrg, Subject: "org:" + org, Action: record.ActionManage, Resource: "org:" + devnet.DemoOrg})
	j3 := tn.createJob(t, rival, &record.JobCreate{Org: devnet.DemoOrg, Command: "ping", Args: map[string]any{"n": 3}, Target: record.JobTarget{Class: class},
		Waves: 1, BlocksPerWave: 1, MaxFailures: 5, TimeoutBlocks: 1000})
	if j3.Grant == 0 {
		t.Fatalf("job %+v; want created through a grant", j3)
	}
	tn.send(t, tn.admin, &record.GrantRevoke{ID: j3.Grant})
	res, err = d.RunJobs(ctx)
	if err != nil || len(res.Ran) != 1 || res.Ran[0].ID != j3.ID || res.Ran[0].Outcome != record.JobRejected || !res.Ran[0].Reported ||
		!strings.Contains(res.Ran[0].Reason, "revoked") || calls.Load() != 1 {
		t.Fatalf("after the revoke: %+v, %v (calls %d); want job %d rejected (revoked) and reported", res, err, calls.Load(), j3.ID)
	}
	testutil.WaitFor(t, ctx, "job counted rejected, with the reason", func() bool {
		p, err := client.New(tn.d.APIURL(0)).Job(ctx, devnet.DemoOrg, j3.ID)
		return err == nil && p.Job.Rejected == 1 && len(p.Failed) == 1 && strings.Contains(p.Failed[0].Reason, "revoked")
	})
}
