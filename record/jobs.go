package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Jobs (docs/management.md, "Commands and jobs"): an organisation's admin,
// or the holder of a "manage" grant on it, sends a command — a name and
// small arguments — to a list of its devices, a class or a label, in waves
// (Waves, shared with firmware rollouts). A job is one record whatever the
// number of devices it covers; each device learns of it at its next wake
// through the job index of its class, labels and id (JobIndexKey), proves
// it, runs it once and reports the outcome with a job.report signed by its
// key. The ledger counts the outcomes and aborts the job when failures
// reach its threshold; an admin may cancel it.
const (
	KindJobCreate = "job.create"
	KindJobCancel = "job.cancel"
	KindJobReport = "job.report"
)

// Job states. A job is "done" once its timeout height is reached, or once
// every device of its device list has reported (JobRecord.StateAt).
const (
	JobActive    = "active"
	JobAborted   = "aborted"
	JobCancelled = "cancelled"
	JobDone      = "done"
)

// Job outcomes a device reports.
const (
	JobSucceeded = "succeeded"
	JobFailed    = "failed"   // the handler ran and returned an error
	JobRejected  = "rejected" // the device refused to run it: no handler, or the right it was created by has ended
)

// Bounds of a job.
const (
	MaxJobDevices  = 256 // devices of a device-list target
	MaxJobWaves    = 100
	MaxJobReason   = 200 // bytes of a reported reason
	MaxOpenJobs    = 16  // open jobs per target (class, label, device)
	maxJobCommand  = 64
	maxJobTimeout  = 1 << 24 // blocks
	prefixJob      = "jb/"   // jb/<org>/<id u64 BE> -> JobRecord
	prefixJobOut   = "jo/"   // jo/<org>/<id u64 BE><device did> -> JobOutcome
	prefixJobIndex = "ji/"   // ji/<org>/<scope>/<name> -> JobIndex (the open jobs of a target)
	prefixJobSeq   = "jn/"   // jn/<org> -> u64 BE last job id
)

// JobTarget is whom a job is for: exactly one of a list of devices, a
// class, or a label ("key=value").
type JobTarget struct {
	Devices []string `cbor:"1,keyasint,omitempty" json:"devices,omitempty"`
	Class   string   `cbor:"2,keyasint,omitempty" json:"class,omitempty"`
	Label   string   `cbor:"3,keyasint,omitempty" json:"label,omitempty"`
}

// Validate checks that exactly one target is named, and its syntax.
func (t *JobTarget) Validate() error {
	n := 0
	if len(t.Devices) > 0 {
		n++
	}
	if t.Class != "" {
		n++
	}
	if t.Label != "" {
		n++
	}
	if n != 1 {
		return errors.New("a job targets exactly one of: a list of devices, a class, a label")
	}
	for _, s := range t.Scopes() {
		if err := ValidateConfigTarget(s[0], s[1]); err != nil {
			return err
		}
	}
	if len(t.Devices) > MaxJobDevices {
		return fmt.Errorf("a job lists %d devices; at most %d (target a class or a label)", len(t.Devices), MaxJobDevices)
	}
	if !slices.IsSorted(t.Devices) || len(slices.Compact(slices.Clone(t.Devices))) != len(t.Devices) {
		return errors.New("a job's devices are listed sorted, each once")
	}
	return nil
}

// Scopes lists the targets (scope, name as in ConfigLayers) whose job
// index lists the job.
func (t *JobTarget) Scopes() [][2]string {
	switch {
	case t.Class != "":
		return [][2]string{{ConfigClass, t.Class}}
	case t.Label != "":
		return [][2]string{{ConfigLabel, t.Label}}
	}
	out := make([][2]string, 0, len(t.Devices))
	for _, d := range t.Devices {
		out = append(out, [2]string{ConfigDevice, d})
	}
	return out
}

// Covers reports whether the target covers device d (its class, one of
// its labels, or its id in the list). The ledger and the device both ask it.
func (t *JobTarget) Covers(d *Device) bool {
	switch {
	case t.Class != "":
		return d.Class == t.Class
	case t.Label != "":
		k, v, _ := strings.Cut(t.Label, "=")
		got, ok := d.Labels[k]
		return ok && got == v
	}
	_, ok := slices.BinarySearch(t.Devices, d.ID)
	return ok
}

// String names the target as the CLI takes it.
func (t *JobTarget) String() string {
	switch {
	case t.Class != "":
		return "class " + t.Class
	case t.Label != "":
		return "label " + t.Label
	}
	return fmt.Sprintf("%d device(s)", len(t.Devices))
}

// JobCreate starts a job: Command with Args (the same bounds and types as
// desired configuration settings: ValidateSettings) to Target's devices of
// Org, in Waves waves BlocksPerWave blocks apart; aborted when MaxFailures
// devices have reported failed or rejected; devices that have not
// reported TimeoutBlocks blocks after the start count as timed out.
type JobCreate struct {
	Org           string         `cbor:"1,keyasint" json:"org"`
	Command       string         `cbor:"2,keyasint" json:"command"`
	Args          map[string]any `cbor:"3,keyasint,omitempty" json:"args,omitempty"`
	Target        JobTarget      `cbor:"4,keyasint" json:"target"`
	Waves         uint32         `cbor:"5,keyasint" json:"waves"`
	BlocksPerWave uint32         `cbor:"6,keyasint" json:"blocks_per_wave"`
	MaxFailures   uint32         `cbor:"7,keyasint" json:"max_failures"`
	TimeoutBlocks uint32         `cbor:"8,keyasint" json:"timeout_blocks"`
}

func (*JobCreate) Kind() string { return KindJobCreate }

func (m *JobCreate) ValidateBasic() error {
	if err := validateOrgID(m.Org); err != nil {
		return err
	}
	if err := ValidateSettingName(m.Command); err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if err := ValidateSettings(m.Args); err != nil {
		return fmt.Errorf("arguments: %w", err)
	}
	if err := m.Target.Validate(); err != nil {
		return err
	}
	switch {
	case m.Waves < 1 || m.Waves > MaxJobWaves:
		return fmt.Errorf("%d waves; want 1 to %d", m.Waves, MaxJobWaves)
	case m.BlocksPerWave < 1 || m.BlocksPerWave > maxJobTimeout:
		return fmt.Errorf("%d blocks per wave; want 1 to %d", m.BlocksPerWave, maxJobTimeout)
	case m.MaxFailures < 1:
		return errors.New("a job needs a failure threshold of at least 1")
	case m.TimeoutBlocks < (m.Waves-1)*m.BlocksPerWave+1 || m.TimeoutBlocks > maxJobTimeout:
		return fmt.Errorf("timeout of %d blocks: want at least %d (after the last wave opens) and at most %d", m.TimeoutBlocks, (m.Waves-1)*m.BlocksPerWave+1, maxJobTimeout)
	}
	return nil
}

// JobCancel cancels an active job: devices that have not run it do not.
type JobCancel struct {
	Org string `cbor:"1,keyasint" json:"org"`
	ID  uint64 `cbor:"2,keyasint" json:"id"`
}

func (*JobCancel) Kind() string { return KindJobCancel }

func (m *JobCancel) ValidateBasic() error {
	if m.ID == 0 {
		return errors.New("a job id is 1 or more")
	}
	return validateOrgID(m.Org)
}

// JobReport is a device's outcome of a job, signed by its key; each
// device reports once per job.
type JobReport struct {
	Org     string `cbor:"1,keyasint" json:"org"`
	ID      uint64 `cbor:"2,keyasint" json:"id"`
	Outcome string `cbor:"3,keyasint" json:"outcome"`
	Reason  string `cbor:"4,keyasint,omitempty" json:"reason,omitempty"`
}

func (*JobReport) Kind() string { return KindJobReport }

func (m *JobReport) ValidateBasic() error {
	if err := (&JobCancel{Org: m.Org, ID: m.ID}).ValidateBasic(); err != nil {
		return err
	}
	switch m.Outcome {
	case JobSucceeded:
		if m.Reason != "" {
			return errors.New("a succeeded job gives no reason")
		}
	case JobFailed, JobRejected:
	default:
		return fmt.Errorf("outcome %q: want succeeded, failed or rejected", m.Outcome)
	}
	return validateText("reason", m.Reason, MaxJobReason)
}

// JobRecord is a job on the ledger, with its counts. Grant is the "manage"
// grant its signer held (0: an admin of Org); a device refuses a job whose
// right has ended (ManageRightHolds).
type JobRecord struct {
	ID        uint64    `cbor:"1,keyasint" json:"id"`
	JobCreate JobCreate `cbor:"2,keyasint" json:"job"`
	Signer    string    `cbor:"3,keyasint" json:"signer"`
	Grant     uint64    `cbor:"4,keyasint,omitempty" json:"grant,omitempty"`
	Start     int64     `cbor:"5,keyasint" json:"start"`   // height; the first wave opens here
	Timeout   int64     `cbor:"6,keyasint" json:"timeout"` // height; no report is taken from here on
	State     string    `cbor:"7,keyasint" json:"state"`   // active, aborted, cancelled, done
	Ended     int64     `cbor:"8,keyasint,omitempty" json:"ended,omitempty"`
	Succeeded uint32    `cbor:"9,keyasint,omitempty" json:"succeeded"`
	Failed    uint32    `cbor:"10,keyasint,omitempty" json:"failed"`
	Rejected  uint32    `cbor:"11,keyasint,omitempty" json:"rejected"`
	Tx        []byte    `cbor:"12,keyasint,omitempty" json:"tx,omitempty"`
}

// Waves is the job's wave arithmetic (the same as firmware rollouts').
func (j *JobRecord) Waves() Waves {
	return Waves{Seed: fmt.Sprintf("job/%s/%d", j.JobCreate.Org, j.ID), Start: j.Start,
		Percent: WavePercent(j.JobCreate.Waves), Blocks: j.JobCreate.BlocksPerWave}
}

// StateAt is the job's state at height h: an active job is done from its
// timeout height on.
func (j *JobRecord) StateAt(h int64) string {
	if j.State == JobActive && h >= j.Timeout {
		return JobDone
	}
	return j.State
}

// Right is the right the job was created by.
func (j *JobRecord) Right() ManageRight {
	return ManageRight{Org: j.JobCreate.Org, Signer: j.Signer, Grant: j.Grant}
}

// DecodeJobRecord parses a stored job (from a proof) strictly and checks
// its fields.
func DecodeJobRecord(b []byte) (*JobRecord, error) {
	var j JobRecord
	if err := Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("job record: %w", err)
	}
	if err := j.Validate(); err != nil {
		return nil, err
	}
	return &j, nil
}

// Validate checks a job record's fields.
func (j *JobRecord) Validate() error {
	if err := j.JobCreate.ValidateBasic(); err != nil {
		return fmt.Errorf("job record: %w", err)
	}
	switch j.State {
	case JobActive, JobAborted, JobCancelled, JobDone:
	default:
		return fmt.Errorf("job record: state %q", j.State)
	}
	if j.ID == 0 {
		return errors.New("job record: id 0")
	}
	return nil
}

// JobIndex lists the open jobs of one target (a class, a label, a
// device), oldest first: what a device proves to learn of its jobs.
type JobIndex struct {
	IDs []uint64 `cbor:"1,keyasint" json:"ids"`
}

// DecodeJobIndex parses a stored job index strictly.
func DecodeJobIndex(b []byte) (*JobIndex, error) {
	var x JobIndex
	if err := Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("job index: %w", err)
	}
	if err := x.Validate(); err != nil {
		return nil, err
	}
	return &x, nil
}

// Validate checks that an index is bounded and in id order.
func (x *JobIndex) Validate() error {
	if len(x.IDs) > MaxOpenJobs {
		return fmt.Errorf("job index lists %d jobs; at most %d", len(x.IDs), MaxOpenJobs)
	}
	if !slices.IsSorted(x.IDs) {
		return errors.New("job index is not in id order")
	}
	return nil
}

// JobOutcome is what one device reported to a job.
type JobOutcome struct {
	Device  string `cbor:"1,keyasint" json:"device"`
	Outcome string `cbor:"2,keyasint" json:"outcome"`
	Reason  string `cbor:"3,keyasint,omitempty" json:"reason,omitempty"`
	Wave    uint64 `cbor:"4,keyasint" json:"wave"`
	Height  int64  `cbor:"5,keyasint" json:"height"`
}

// JobKey is the state key of a job.
func JobKey(org string, id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixJob+org+"/"), id)
}

// JobPrefix is the state prefix of an organisation's jobs ("": every job).
func JobPrefix(org string) []byte {
	if org == "" {
		return []byte(prefixJob)
	}
	return []byte(prefixJob + org + "/")
}

// JobOutcomePrefix is the state prefix of a job's outcomes.
func JobOutcomePrefix(org string, id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixJobOut+org+"/"), id)
}

// JobOutcomeKey is the state key of one device's outcome of a job.
func JobOutcomeKey(org string, id uint64, device string) []byte {
	return append(JobOutcomePrefix(org, id), device...)
}

// JobIndexKey is the state key of the open jobs of a target (scope and
// name as in ConfigLayers).
func JobIndexKey(org, scope, name string) []byte {
	return []byte(prefixJobIndex + org + "/" + scope + "/" + name)
}

// JobSeqKey is the state key of an organisation's last job id.
func JobSeqKey(org string) []byte { return []byte(prefixJobSeq + org) }

// JobProgress is a job's progress (GET /v1/jobs/{org}/{id}): the record,
// its state at Height, and per wave the devices' outcomes; Pending
// devices have not reported and the job is still open; TimedOut ones had
// not reported by its end.
type JobProgress struct {
	Height int64        `json:"height"`
	Job    JobRecord    `json:"job"`
	State  string       `json:"state"`
	Waves  []JobWave    `json:"waves"`
	Open   uint64       `json:"open_wave"` // the wave open at Height (0: none yet)
	Counts JobCounts    `json:"counts"`
	Failed []JobOutcome `json:"outcomes,omitempty"` // failed and rejected outcomes, with reasons
}

// JobWave is the progress of one wave.
type JobWave struct {
	Wave   uint64    `json:"wave"`
	Opens  int64     `json:"opens"` // height
	Counts JobCounts `json:"counts"`
}

// JobCounts counts devices by outcome.
type JobCounts struct {
	Targeted  int `json:"targeted"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Rejected  int `json:"rejected"`
	Pending   int `json:"pending"`   // not reported, the job still open
	TimedOut  int `json:"timed_out"` // not reported by the timeout height
	Skipped   int `json:"skipped"`   // not reported, and the job was aborted or cancelled: it will not run
}

// Add counts one device's outcome ("" for none) given the job's state.
func (c *JobCounts) Add(outcome, state string) {
	c.Targeted++
	switch outcome {
	case JobSucceeded:
		c.Succeeded++
	case JobFailed:
		c.Failed++
	case JobRejected:
		c.Rejected++
	default:
		switch state {
		case JobActive:
			c.Pending++
		case JobDone:
			c.TimedOut++
		default:
			c.Skipped++
		}
	}
}
