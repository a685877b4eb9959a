package device

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/lightclient"
	"github.com/thingnet/thingnet/record"
)

// Commands and jobs (docs/management.md, "Commands and jobs"). One
// registry of command handlers serves both the jobs an organisation's
// admin sends to many devices and the commands agreements issue
// (Device.Actuator).

// CommandHandler runs a command with its arguments (int64, float64,
// string or bool values: record.ConfigValue). An error means the command
// failed; its text is the reason the device reports (cut to
// record.MaxJobReason bytes).
type CommandHandler func(ctx context.Context, args map[string]any) error

// WithCommandHandler registers the handler of the command name. A job
// whose command has no handler is rejected ("no handler") and reported so.
func WithCommandHandler(name string, h CommandHandler) Option {
	return func(c *config) {
		if c.commands == nil {
			c.commands = map[string]CommandHandler{}
		}
		c.commands[name] = h
	}
}

// JobsFile is the name of the jobs' state in the state directory: the
// CBOR of jobsState. A job started before a restart is never started
// again.
const JobsFile = "jobs.state"

// jobsState is what the device did of each job it saw, by "org/id".
type jobsState struct {
	Jobs map[string]*jobEntry `cbor:"1,keyasint,omitempty"`
}

type jobEntry struct {
	Started  bool   `cbor:"1,keyasint,omitempty"` // the handler was called (persisted before the call)
	Outcome  string `cbor:"2,keyasint,omitempty"` // what it reports
	Reason   string `cbor:"3,keyasint,omitempty"`
	Reported bool   `cbor:"4,keyasint,omitempty"` // the ledger took the report, or refused it for good
}

// maxJobEntries bounds jobs.state: jobs the device ran and has not yet
// proved closed.
const maxJobEntries = 256

// Job statuses a device proves (ProvedJob.Status).
const (
	JobRun         = "run"          // open, this device's wave is open, the right holds: run it
	JobReject      = "reject"       // the right it was created by has ended: refuse it and report so
	JobWaiting     = "waiting"      // this device's wave has not opened yet
	JobClosed      = "closed"       // aborted, cancelled or done: it does not run
	JobNotTargeted = "not-targeted" // listed, but its target no longer covers this device
)

// ProvedJob is one job that names this device, as it proved it.
type ProvedJob struct {
	Job    record.JobRecord
	Status string
	Reason string
}

// ProvedJobs is what the device proved of its jobs in one state: the
// jobs listed in the job index of its class, its labels and itself, each
// checked against a header its light client verified.
type ProvedJobs struct {
	Height   int64
	Jobs     []ProvedJob
	Unproved []string // gateways whose answers failed the proofs
}

// Jobs proves the jobs that name this device: its record, the job index of
// each target that covers it (record.ConfigLayers: class, labels, itself)
// and each listed job, from one gateway's proofs of one state. A gateway
// that forges or swaps a job or an index (its proof does not verify) is
// set aside, the next one asked, and named in Unproved; a gateway can
// withhold a job only by not answering at all.
func (d *Device) Jobs(ctx context.Context) (*ProvedJobs, error) {
	var out *ProvedJobs
	var unproved []string
	err := d.verified(ctx, "proving jobs", func(gw Gateway) error {
		pj, err := d.provedJobs(ctx, d.apiClient(gw))
		if err != nil && isBadProof(err) {
			unproved = append(unproved, gw.API)
		}
		out = pj
		return err
	})
	if err != nil {
		return nil, err
	}
	out.Unproved = unproved
	return out, nil
}

func isBadProof(err error) bool {
	return errors.Is(err, record.ErrBadProof) || errors.Is(err, lightclient.ErrBadHeader) ||
		errors.Is(err, lightclient.ErrNotVerified) || errors.Is(err, lightclient.ErrTrustedHashMismatch)
}

func (d *Device) provedJobs(ctx context.Context, c *client.Client) (*ProvedJobs, error) {
	self, p, err := d.provedSelf(ctx, c)
	if err != nil {
		return nil, err
	}
	out := &ProvedJobs{Height: p.Height}
	h := p.Height + 1 // the earliest block a report can be in
	keys := [][]byte{record.OrgKey(self.Org)}
	for _, t := range record.ConfigLayers(self) {
		keys = append(keys, record.JobIndexKey(self.Org, t[0], t[1]))
	}
	d.prefetch(ctx, c, p.Height, keys...)
	var ids []uint64
	for _, t := range record.ConfigLayers(self) {
		var idx record.JobIndex
		found, err := d.provedKey(ctx, c, record.JobIndexKey(self.Org, t[0], t[1]), p.Height, &idx)
		if err != nil {
			return nil, fmt.Errorf("the job index of %s %s: %w", t[0], t[1], err)
		}
		if !found {
			continue
		}
		if err := idx.Validate(); err != nil {
			return nil, fmt.Errorf("the job index of %s %s: %w", t[0], t[1], err)
		}
		ids = append(ids, idx.IDs...)
	}
	slices.Sort(ids)
	rights := d.rights(c, self.Org, p.Height)
	ids = slices.Compact(ids)
	jobKeys := make([][]byte, len(ids))
	for i, id := range ids {
		jobKeys[i] = record.JobKey(self.Org, id)
	}
	d.prefetch(ctx, c, p.Height, jobKeys...)
	for _, id := range ids {
		var j record.JobRecord
		found, err := d.provedKey(ctx, c, record.JobKey(self.Org, id), p.Height, &j)
		if err != nil {
			return nil, fmt.Errorf("job %d: %w", id, err)
		}
		if !found {
			return nil, fmt.Errorf("%w: job %d of %s is listed, but proved absent", record.ErrBadProof, id, self.Org)
		}
		if j.ID != id || j.JobCreate.Org != self.Org {
			return nil, fmt.Errorf("%w: the record under job %d of %s is job %d of %s", record.ErrBadProof, id, self.Org, j.ID, j.JobCreate.Org)
		}
		pj := ProvedJob{Job: j}
		switch w := j.Waves(); {
		case j.Validate() != nil:
			pj.Status, pj.Reason = JobClosed, j.Validate().Error()
		case !j.JobCreate.Target.Covers(self):
			pj.Status, pj.Reason = JobNotTargeted, "its target, "+j.JobCreate.Target.String()+", does not cover this device"
		case j.StateAt(h) != record.JobActive:
			pj.Status, pj.Reason = JobClosed, "the job is "+j.StateAt(h)
		case !w.Open(d.id, h):
			pj.Status, pj.Reason = JobWaiting, fmt.Sprintf("wave %d opens at height %d", w.WaveOf(d.id), j.Start+int64(w.WaveOf(d.id)-1)*int64(w.Blocks))
		default:
			pj.Status = JobRun
			if err := rights.check(ctx, j.Right(), h); errors.Is(err, errRightEnded) {
				pj.Status, pj.Reason = JobReject, strings.TrimPrefix(err.Error(), errRightEnded.Error()+": ")
			} else if err != nil {
				return nil, err
			}
		}
		out.Jobs = append(out.Jobs, pj)
	}
	return out, nil
}

// RanJob is what the device did of one job at RunJobs.
type RanJob struct {
	Org      string
	ID       uint64
	Command  string
	Outcome  string // succeeded, failed, rejected
	Reason   string
	Reported bool  // the ledger has the outcome (or refused it for good: ReportErr)
	Err      error // why the report did not go (tried again at the next RunJobs)
}

// JobsResult is the outcome of one RunJobs.
type JobsResult struct {
	Proved *ProvedJobs
	Ran    []RanJob // jobs run, rejected or reported at this call
}

// RunJobs proves the device's jobs (Jobs) and, for each one to run whose
// wave is open, calls its command's handler once — the start is kept in
// the state directory before the call, so a job is never started twice,
// across restarts (one interrupted by a restart is reported failed) —
// then reports the outcome with a job.report signed by the device's key.
// A job whose right has ended, or whose command has no handler, is
// rejected and reported so. A report that does not go is sent at the next
// call; one the ledger refuses (the job ended meanwhile) is not sent again.
func (d *Device) RunJobs(ctx context.Context) (*JobsResult, error) {
	pj, err := d.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	d.jobsMu.Lock()
	defer d.jobsMu.Unlock()
	st, err := d.loadJobsLocked()
	if err != nil {
		return nil, err
	}
	res := &JobsResult{Proved: pj}
	var errs []error
	listed := map[string]bool{}
	for _, p := range pj.Jobs {
		j := p.Job
		key := j.JobCreate.Org + "/" + strconv.FormatUint(j.ID, 10)
		listed[key] = true
		if p.Status == JobClosed {
			// Proved aborted, cancelled or done: final, it never runs again,
			// so what the device did of it can go.
			delete(st.Jobs, key)
			continue
		}
		e := st.Jobs[key]
		if e == nil {
			e = &jobEntry{}
		}
		if e.Reported {
			continue
		}
		if e.Outcome == "" {
			switch p.Status {
			case JobReject:
				e.Outcome, e.Reason = record.JobRejected, "refused: "+p.Reason
			case JobRun:
				h, ok := d.cfg.commands[j.JobCreate.Command]
				switch {
				case e.Started:
					e.Outcome, e.Reason = record.JobFailed, "interrupted: the device restarted while it ran"
				case !ok:
					e.Outcome, e.Reason = record.JobRejected, "no handler for command "+j.JobCreate.Command
				default:
					e.Started = true
					st.Jobs[key] = e
					if err := d.saveJobsLocked(st); err != nil {
						return res, err // not started: nothing ran
					}
					if err := h(ctx, commandArgs(j.JobCreate.Args)); err != nil {
						e.Outcome, e.Reason = record.JobFailed, err.Error()
					} else {
						e.Outcome = record.JobSucceeded
					}
				}
			default:
				continue // waiting, closed, not for it: nothing to do or say
			}
			e.Reason = cutReason(e.Reason)
			st.Jobs[key] = e
			if err := d.saveJobsLocked(st); err != nil {
				return res, err
			}
		}
		run := RanJob{Org: j.JobCreate.Org, ID: j.ID, Command: j.JobCreate.Command, Outcome: e.Outcome, Reason: e.Reason}
		err := d.submit(ctx, &record.JobReport{Org: run.Org, ID: run.ID, Outcome: e.Outcome, Reason: e.Reason}, "reporting job "+key)
		switch {
		case err == nil:
			e.Reported, run.Reported = true, true
		case errors.Is(err, ErrTxRefused):
			e.Reported, run.Reported, run.Err = true, true, err
		default:
			run.Err = err
			errs = append(errs, err)
		}
		res.Ran = append(res.Ran, run)
		if err := d.saveJobsLocked(st); err != nil {
			return res, err
		}
	}
	// An entry goes when the device proves its job closed (above), never
	// merely because an index no longer lists it: a gateway answering
	// from a state before the job was created must not make the device
	// forget it ran it. Past maxJobEntries, unlisted reported ones go.
	if len(st.Jobs) > maxJobEntries {
		for _, k := range slices.Sorted(maps.Keys(st.Jobs)) {
			if e := st.Jobs[k]; len(st.Jobs) > maxJobEntries && !listed[k] && e.Reported {
				delete(st.Jobs, k)
			}
		}
	}
	return res, errors.Join(append(errs, d.saveJobsLocked(st))...)
}

// commandArgs gives a handler the arguments in their one Go form (int64,
// float64, string, bool: record.ConfigValue), as decoded CBOR may hold
// unsigned integers.
func commandArgs(in map[string]any) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		if n, err := record.ConfigValue(v); err == nil {
			out[k] = n
		}
	}
	return out
}

// cutReason keeps a reason within record.MaxJobReason bytes of printable
// text.
func cutReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	for len(s) > record.MaxJobReason {
		_, n := lastRune(s)
		s = s[:len(s)-n]
	}
	return s
}

func lastRune(s string) (rune, int) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i]&0xc0 != 0x80 {
			return rune(s[i]), len(s) - i
		}
	}
	return 0, len(s)
}

func (d *Device) loadJobsLocked() (*jobsState, error) {
	if d.jobs != nil {
		return d.jobs, nil
	}
	st := &jobsState{}
	if b, err := d.readState(JobsFile, "the jobs' state"); err != nil {
		return nil, err
	} else if b != nil {
		if st, err = parseJobsState(b); err != nil {
			return nil, fmt.Errorf("device: %s: %w (remove it only if no job is running: a job started before would run again)", filepath.Join(d.cfg.stateDir, JobsFile), err)
		}
	}
	if st.Jobs == nil {
		st.Jobs = map[string]*jobEntry{}
	}
	d.jobs = st
	return st, nil
}

// parseJobsState decodes jobs.state strictly: bounded, keys "org/id",
// known outcomes, reasons a report may carry.
func parseJobsState(b []byte) (*jobsState, error) {
	st := &jobsState{}
	if err := record.Unmarshal(b, st); err != nil {
		return nil, err
	}
	if len(st.Jobs) > 4*maxJobEntries {
		return nil, fmt.Errorf("%d jobs: more than a device keeps", len(st.Jobs))
	}
	for k, e := range st.Jobs {
		org, id, ok := strings.Cut(k, "/")
		if n, err := strconv.ParseUint(id, 10, 64); !ok || err != nil || n == 0 || org == "" {
			return nil, fmt.Errorf("job %q: want ORG/ID", k)
		}
		if e == nil {
			return nil, fmt.Errorf("job %s: no entry", k)
		}
		if e.Outcome != "" {
			if err := (&record.JobReport{Org: org, ID: 1, Outcome: e.Outcome, Reason: e.Reason}).ValidateBasic(); err != nil {
				return nil, fmt.Errorf("job %s: %w", k, err)
			}
		} else if e.Reason != "" || e.Reported {
			return nil, fmt.Errorf("job %s: a reason or a report without an outcome", k)
		}
	}
	return st, nil
}

func (d *Device) saveJobsLocked(st *jobsState) error {
	d.jobs = st
	return d.saveState(JobsFile, "the jobs' state", st)
}

// Actuator returns the Actuator that executes an agreement's commands with
// the handlers registered with WithCommandHandler: a command runs the
// handler named by the first word of its payload, with the arguments
// "payload" (the whole text), "agreement" and "transition". A command with
// no handler is an error (retried at the next wake, like any failure).
// Give it as Agent.Actuator for the agent to use it.
func (d *Device) Actuator() Actuator { return registryActuator{d} }

type registryActuator struct{ d *Device }

func (a registryActuator) Execute(ctx context.Context, c record.Command) error {
	text := string(c.Payload)
	name, _, _ := strings.Cut(strings.TrimSpace(text), " ")
	h, ok := a.d.cfg.commands[name]
	if !ok {
		return fmt.Errorf("device: no handler for command %q of agreement %d", name, c.Agreement)
	}
	return h(ctx, map[string]any{"payload": text, "agreement": int64(c.Agreement), "transition": c.Transition})
}
