package ledger

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/thingnet/thingnet/record"
)

// jobCreate records a job (docs/management.md, "Commands and jobs"): one
// record, plus its id in the job index of each target it names (a class, a
// label, or each listed device), whatever the number of devices it covers.
// The signer must manage the organisation (manageRight: an admin, or a
// "manage" grant on org:<org>); listed devices must be the organisation's.
// A device creates a job only through such a grant held by the device
// itself: a gateway whose rules command devices (rules.Command).
func (x *txExec) jobCreate(m *record.JobCreate) error {
	g, err := manageRight(x.st, x.actor(), m.Org, "the devices of "+strconv.Quote(m.Org), []string{"org:" + m.Org}, x.height)
	if err != nil {
		return err
	}
	for _, id := range m.Target.Devices {
		d, err := x.st.Device(id)
		if err != nil {
			return notFound(err)
		}
		if d.Org != m.Org {
			return record.Errf(record.CodeUnauthorized, "device %s belongs to %q, not %q: a job of %s cannot command it", d.ID, d.Org, m.Org, m.Org)
		}
	}
	last, err := x.st.u64(record.JobSeqKey(m.Org))
	if err != nil {
		return err
	}
	j := &record.JobRecord{ID: last + 1, JobCreate: *m, Signer: x.tx.Signer, Start: x.height,
		Timeout: x.height + int64(m.TimeoutBlocks), State: record.JobActive, Tx: x.tx.Hash[:]}
	if g != nil {
		j.Grant = g.ID
	}
	// Each target's index keeps the open jobs only: closed ones leave it here.
	for _, t := range m.Target.Scopes() {
		key := record.JobIndexKey(m.Org, t[0], t[1])
		var idx record.JobIndex
		if _, err := x.st.get(key, &idx); err != nil {
			return err
		}
		open := idx.IDs[:0]
		for _, id := range idx.IDs {
			o, err := x.st.Job(m.Org, id)
			if err != nil {
				return err
			}
			if o.StateAt(x.height) == record.JobActive {
				open = append(open, id)
			}
		}
		if len(open) >= record.MaxOpenJobs {
			return record.Errf(record.CodeConflict, "the %s %s of %s has %d open jobs; at most %d (cancel one, or wait for one to end)", t[0], t[1], m.Org, len(open), record.MaxOpenJobs)
		}
		x.buf.set(key, &record.JobIndex{IDs: append(open, j.ID)})
	}
	x.buf.set(record.JobSeqKey(m.Org), u64bytes(j.ID))
	x.buf.set(record.JobKey(m.Org, j.ID), j)
	x.emit("job", "action", "create", "org", m.Org, "id", strconv.FormatUint(j.ID, 10), "command", m.Command)
	return nil
}

// jobCancel ends an active job: no device runs it from the next block on.
func (x *txExec) jobCancel(m *record.JobCancel) error {
	if x.device != nil {
		return record.Errf(record.CodeUnauthorized, "a device does not cancel jobs")
	}
	if _, err := manageRight(x.st, x.actor(), m.Org, "the devices of "+strconv.Quote(m.Org), []string{"org:" + m.Org}, x.height); err != nil {
		return err
	}
	j, err := x.st.Job(m.Org, m.ID)
	if err != nil {
		return notFound(err)
	}
	if s := j.StateAt(x.height); s != record.JobActive {
		return record.Errf(record.CodeConflict, "job %d of %s is %s already", m.ID, m.Org, s)
	}
	j.State, j.Ended = record.JobCancelled, x.height
	x.buf.set(record.JobKey(m.Org, m.ID), j)
	x.emit("job", "action", "cancel", "org", m.Org, "id", strconv.FormatUint(m.ID, 10))
	return nil
}

// jobReport counts a device's outcome of a job — once per device — and
// aborts the job when failed and rejected outcomes reach its threshold:
// devices of later waves then prove it aborted and do not run it.
func (x *txExec) jobReport(m *record.JobReport) error {
	if x.device == nil {
		return record.Errf(record.CodeUnauthorized, "only a device reports the outcome of a job it ran")
	}
	d, err := x.st.Device(x.device.ID)
	if err != nil {
		return notFound(err)
	}
	if d.Org != m.Org {
		return record.Errf(record.CodeUnauthorized, "device %s of %q cannot report for a job of %q", d.ID, d.Org, m.Org)
	}
	j, err := x.st.Job(m.Org, m.ID)
	if err != nil {
		return notFound(err)
	}
	if !j.JobCreate.Target.Covers(d) {
		return record.Errf(record.CodeUnauthorized, "job %d of %s targets %s, not device %s", m.ID, m.Org, j.JobCreate.Target.String(), d.ID)
	}
	if s := j.StateAt(x.height); s != record.JobActive {
		return record.Errf(record.CodeConflict, "job %d of %s is %s: no outcome is taken", m.ID, m.Org, s)
	}
	w := j.Waves()
	if !w.Open(d.ID, x.height) {
		return record.Errf(record.CodeConflict, "job %d of %s: the wave of device %s (%d) has not opened", m.ID, m.Org, d.ID, w.WaveOf(d.ID))
	}
	key := record.JobOutcomeKey(m.Org, m.ID, d.ID)
	var prev record.JobOutcome
	if ok, err := x.st.get(key, &prev); err != nil {
		return err
	} else if ok {
		return record.Errf(record.CodeConflict, "device %s reported %s for job %d at height %d already", d.ID, prev.Outcome, m.ID, prev.Height)
	}
	x.buf.set(key, &record.JobOutcome{Device: d.ID, Outcome: m.Outcome, Reason: m.Reason, Wave: w.WaveOf(d.ID), Height: x.height})
	switch m.Outcome {
	case record.JobSucceeded:
		j.Succeeded++
	case record.JobFailed:
		j.Failed++
	case record.JobRejected:
		j.Rejected++
	}
	switch {
	case j.Failed+j.Rejected >= j.JobCreate.MaxFailures:
		j.State, j.Ended = record.JobAborted, x.height
		x.emit("job", "action", "abort", "org", m.Org, "id", strconv.FormatUint(m.ID, 10), "failed", strconv.FormatUint(uint64(j.Failed+j.Rejected), 10))
	case len(j.JobCreate.Target.Devices) > 0 && int(j.Succeeded+j.Failed+j.Rejected) == len(j.JobCreate.Target.Devices):
		j.State, j.Ended = record.JobDone, x.height
	}
	x.buf.set(record.JobKey(m.Org, m.ID), j)
	x.emit("job", "action", "report", "org", m.Org, "id", strconv.FormatUint(m.ID, 10), "device", d.ID, "outcome", m.Outcome)
	return nil
}

// Job returns a job.
func (s *State) Job(org string, id uint64) (*record.JobRecord, error) {
	var j record.JobRecord
	ok, err := s.get(record.JobKey(org, id), &j)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("job %d of %s: %w", id, org, ErrNotFound)
	}
	return &j, nil
}

// Jobs returns an organisation's jobs after id after, oldest first, at
// most limit.
func (s *State) Jobs(org string, after uint64, limit int) ([]record.JobRecord, error) {
	p := record.JobPrefix(org)
	var out []record.JobRecord
	err := s.scan(record.JobKey(org, after+1), prefixEnd(p), func(_, v []byte) (bool, error) {
		var j record.JobRecord
		if err := record.Unmarshal(v, &j); err != nil {
			return false, err
		}
		out = append(out, j)
		return len(out) < limit, nil
	})
	return out, err
}

// JobOutcomes returns every outcome reported to a job, by device id.
func (s *State) JobOutcomes(org string, id uint64) ([]record.JobOutcome, error) {
	p := record.JobOutcomePrefix(org, id)
	var out []record.JobOutcome
	err := s.scan(p, prefixEnd(p), func(_, v []byte) (bool, error) {
		var o record.JobOutcome
		if err := record.Unmarshal(v, &o); err != nil {
			return false, err
		}
		out = append(out, o)
		return true, nil
	})
	return out, err
}

// maxProgressDevices bounds the devices a progress view lists from the
// device records (a read, not block execution).
const maxProgressDevices = 1 << 20

// JobProgress returns a job's progress: per wave, the targeted devices
// by outcome (pending, timed out, skipped when none), with the reasons of
// failed and rejected ones. The targeted devices are the job's list, or
// the organisation's devices its class or label covers now, plus any that
// reported.
func (s *State) JobProgress(org string, id uint64) (*record.JobProgress, error) {
	j, err := s.Job(org, id)
	if err != nil {
		return nil, err
	}
	outs, err := s.JobOutcomes(org, id)
	if err != nil {
		return nil, err
	}
	by := map[string]record.JobOutcome{}
	for _, o := range outs {
		by[o.Device] = o
	}
	targeted := slices.Clone(j.JobCreate.Target.Devices)
	if len(targeted) == 0 {
		ds, err := s.Devices(org, "", maxProgressDevices)
		if err != nil {
			return nil, err
		}
		for i := range ds {
			if j.JobCreate.Target.Covers(&ds[i]) {
				targeted = append(targeted, ds[i].ID)
			}
		}
	}
	for _, o := range outs {
		if _, ok := slices.BinarySearch(targeted, o.Device); !ok {
			targeted = append(targeted, o.Device)
			slices.Sort(targeted)
		}
	}
	w := j.Waves()
	p := &record.JobProgress{Height: s.Height, Job: *j, State: j.StateAt(s.Height + 1), Open: w.Wave(s.Height + 1)}
	for i := range j.JobCreate.Waves {
		p.Waves = append(p.Waves, record.JobWave{Wave: uint64(i) + 1, Opens: j.Start + int64(i)*int64(j.JobCreate.BlocksPerWave)})
	}
	for _, dev := range targeted {
		o := by[dev]
		wave := w.WaveOf(dev)
		if o.Outcome != "" {
			wave = o.Wave
		}
		p.Counts.Add(o.Outcome, p.State)
		if wave >= 1 && int(wave) <= len(p.Waves) {
			p.Waves[wave-1].Counts.Add(o.Outcome, p.State)
		}
		if o.Outcome == record.JobFailed || o.Outcome == record.JobRejected {
			p.Failed = append(p.Failed, o)
		}
	}
	return p, nil
}
