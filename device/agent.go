package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// Actuator executes commands on the device (a relay, a valve, a lock):
// the commands agreements on the ledger issue to it (Device.Commands).
type Actuator interface {
	Execute(ctx context.Context, c record.Command) error
}

// Agent runs one device's duty cycle: wake, read the sensors, send the
// readings in one envelope (one signature), execute the commands the
// ledger holds for it (with an Actuator; each proved, then acknowledged so
// it runs once), close the connections and sleep until the next wake.
type Agent struct {
	Device   *Device
	Sensors  []Sensor
	Wake     time.Duration // time between wakes
	Batch    int           // readings per sensor per wake (spread over the wake interval); 0 = 1
	Jitter   float64       // fraction of Wake added at random to each sleep, so a fleet does not wake in step
	Actuator Actuator      // optional; needs the light client (WithTrust)
	Log      *slog.Logger
	// OnSend, if set, is called after each envelope is acknowledged.
	OnSend func(rc *Receipt)

	// Mesh and MailboxGateway, if set: at each wake the agent pulls the
	// device's mailbox at that gateway (messages go to the mesh node's
	// Handler), and while it sleeps it keeps a wake channel there, so an
	// authorized sender within the device's daily budget can wake it early
	// (meshnode.Start, docs/mesh.md). Nothing else wakes it.
	Mesh           MeshNode
	MailboxGateway string

	// Firmware, if set, runs the firmware update step at the end of
	// every Firmware.Every-th wake (FirmwareUpdater; needs WithTrust).
	Firmware *FirmwareUpdater

	// ConfigEvery, if above 0: at every ConfigEvery-th wake (the first
	// included) the agent proves and applies the device's desired
	// configuration and reports what it applied (Device.ApplyConfig; needs
	// WithTrust). A wake interval it sets (SettingWake) replaces Wake.
	ConfigEvery int
	// OnConfig, if set, is called with each applied configuration report
	// and whether it was sent.
	OnConfig func(rep *record.ConfigReport, sent bool)
	// OnJobs, if set, is called with the outcome of each round of jobs: at
	// the same wakes as the desired configuration (ConfigEvery), never at
	// a wake of their own, the agent proves and runs the device's jobs
	// (Device.RunJobs) when the device has a command handler
	// (WithCommandHandler).
	OnJobs func(*JobsResult)
	// Status, if set, is asked at each wake for the device's health
	// (battery, signal, uptime, free memory, firmware); it goes with the
	// wake's readings as a reading of content type record.ContentStatus.
	// The wake interval in force is filled in when Status leaves it 0.
	Status func() record.StatusReport
	wakes  int
}

// MeshNode is what the agent needs of the device's mesh node (a
// *mesh.Node, started with meshnode.Start): the device's mailbox pulled
// at a gateway, and a wake channel there while it sleeps, closed when ctx
// ends.
type MeshNode interface {
	Pull(ctx context.Context, gateway string) (int, error)
	Sleep(ctx context.Context, gateway string) (<-chan uint64, error)
}

// Run runs the duty cycle until ctx ends. A failed wake (no gateway
// reachable) is logged and retried at the next one: the readings of that
// wake are dropped, the sequence numbers are not reused.
func (a *Agent) Run(ctx context.Context) error {
	if a.Device == nil || len(a.Sensors) == 0 || a.Wake <= 0 {
		return errors.New("device: agent: needs a device, sensors and a wake interval")
	}
	log := a.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	batch := max(a.Batch, 1)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	// Start at a random point of the first interval.
	if !a.sleep(ctx, time.Duration(rng.Float64()*float64(a.interval())), log) {
		return nil
	}
	for {
		if err := a.wake(ctx, batch); err != nil && ctx.Err() == nil {
			log.Warn("device: wake failed", "device", a.Device.ID(), "err", err)
		}
		a.Device.Sleep()
		w := a.interval()
		d := w + time.Duration(a.Jitter*rng.Float64()*float64(w))
		if !a.sleep(ctx, d, log) {
			return nil
		}
	}
}

// sleep waits d, or less if the mailbox gateway wakes the device; false
// when ctx ends.
func (a *Agent) sleep(ctx context.Context, d time.Duration, log *slog.Logger) bool {
	if a.Mesh == nil || a.MailboxGateway == "" {
		return sleepCtx(ctx, d)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel() // closes the wake channel
	wakes, err := a.Mesh.Sleep(sctx, a.MailboxGateway)
	if err != nil {
		log.Debug("device: no wake channel; sleeping on the timer only", "device", a.Device.ID(), "err", err)
		return sleepCtx(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case n, ok := <-wakes:
		if ok {
			log.Info("device: woken by its gateway", "device", a.Device.ID(), "waiting", n)
		} else {
			return sleepCtx(ctx, d) // the gateway went away
		}
	}
	return true
}

func (a *Agent) wake(ctx context.Context, batch int) error {
	now := a.Device.cfg.now()
	var rs []reading.Reading
	step := a.Wake / time.Duration(batch)
	for i := batch - 1; i >= 0; i-- { // samples taken while it slept, oldest first
		at := now.Add(-time.Duration(i) * step)
		for _, s := range a.Sensors {
			rs = append(rs, s.Read(at))
		}
	}
	var errs []error
	if a.Status != nil {
		st := a.Status()
		if st.WakeS == 0 {
			st.WakeS = uint64(a.interval() / time.Second)
		}
		if err := st.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("status report: %w", err))
		} else if b, err := record.Marshal(&st); err == nil {
			rs = append(rs, reading.Reading{Time: now, ContentType: record.ContentStatus, Bytes: b})
		}
	}
	for len(rs) > 0 {
		n := min(len(rs), reading.MaxBatch)
		rc, err := a.Device.SendBatch(ctx, rs[:n])
		rs = rs[n:]
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if a.OnSend != nil {
			a.OnSend(rc)
		}
	}
	if a.Mesh != nil && a.MailboxGateway != "" {
		if _, err := a.Mesh.Pull(ctx, a.MailboxGateway); err != nil {
			errs = append(errs, fmt.Errorf("pulling the mailbox: %w", err))
		}
	}
	if act := a.Actuator; act != nil {
		cmds, err := a.Device.Commands(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("fetching commands: %w", err))
		}
		for _, c := range cmds {
			if err := act.Execute(ctx, c); err != nil {
				errs = append(errs, fmt.Errorf("command %d of agreement %d: %w", c.ID, c.Agreement, err))
				break // executed in order: retried at the next wake
			}
			if err := a.Device.AckCommand(c.ID); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	if a.ConfigEvery > 0 && a.wakes%a.ConfigEvery == 0 {
		rep, sent, err := a.Device.ApplyConfig(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("desired configuration: %w", err))
		}
		if rep != nil && a.OnConfig != nil {
			a.OnConfig(rep, sent)
		}
		if len(a.Device.cfg.commands) > 0 {
			res, err := a.Device.RunJobs(ctx)
			if err != nil {
				errs = append(errs, fmt.Errorf("jobs: %w", err))
			}
			if res != nil && a.OnJobs != nil {
				a.OnJobs(res)
			}
		}
	}
	a.wakes++
	if a.Firmware != nil {
		if err := a.Firmware.wake(ctx, a.Device); err != nil {
			errs = append(errs, fmt.Errorf("firmware update: %w", err))
		}
	}
	return errors.Join(errs...)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// interval is the time between wakes: the desired configuration's
// (SettingWake), else Wake.
func (a *Agent) interval() time.Duration {
	if w := a.Device.Wake(); w > 0 {
		return w
	}
	return a.Wake
}
