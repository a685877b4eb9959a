package device

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/thingnet/thingnet/files/firmware"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/atomicfile"
)

// DefaultUpdateAttempts is how many times a FirmwareUpdater tries a
// release before it gives up on it and reports the failure.
const DefaultUpdateAttempts = 3

// UpdateStateFile is the name of the updater's state in the device's state
// directory: the release it is trying, the attempts made, whether it gave
// up and reported so.
const UpdateStateFile = "firmware-update.json"

// FirmwareUpdater is an Agent's update step. Every Every wakes it asks
// the ledger which release the rollout offers this device
// (OfferedFirmware). If that is not what runs, it checks the release
// (firmware.Verify: the vendor's signature, the device's class, a
// sequence number above the running one — anything else is refused: no
// rollback), fetches the image into the Installer's inactive slot
// (FetchFirmware: digest and size checked while it reads, a wrong image
// discarded and the next source tried), installs it and reports the new
// version on the ledger. A failed attempt is retried at later checks,
// backing off (1, 2, 4 ... checks apart); after MaxAttempts, or at once
// for a release it must refuse, it gives up on that release and reports
// the failure once, with the reason (a firmware.report with Failed,
// which counts against the rollout), and does not try it again unless the
// organisation starts a new rollout of it. The device keeps running what
// it ran. The attempts survive a restart (UpdateStateFile).
//
// A FirmwareUpdater belongs to one agent; it is not safe for concurrent
// use.
type FirmwareUpdater struct {
	Installer Installer
	Every     int // check every Every wakes (1: each wake); 0: never
	// VendorKeys pins the vendors' signing keys, by vendor organisation:
	// a release of a vendor not in the map is refused. Nil: the release's
	// signer on the ledger (the ledger checked, when it was released, that
	// it is an admin of the vendor organisation and signed the manifest).
	VendorKeys  map[string]identity.PublicKey
	MaxAttempts int // 0: DefaultUpdateAttempts
	// OnResult, if set, is told the outcome of each check.
	OnResult func(UpdateResult)

	wakes  int
	skip   int // checks left to skip (back-off)
	st     *updateState
	loaded bool
}

// Update outcomes.
const (
	UpdateNone      = "none"      // nothing offered, or the offered release runs already
	UpdateInstalled = "installed" // installed and reported
	UpdateReported  = "reported"  // ran already; the ledger did not know yet
	UpdateRetry     = "retry"     // this attempt failed; tried again later
	UpdateGaveUp    = "gave-up"   // refused or failed MaxAttempts times; failure reported
	UpdateWaiting   = "waiting"   // backing off, or given up earlier
)

// UpdateResult is the outcome of one update check.
type UpdateResult struct {
	Action  string
	Offer   *FirmwareOffer
	Running Firmware // what runs after the check
	Attempt int      // attempts at the offered release so far
	Err     error    // why an attempt failed
}

type updateState struct {
	Rollout  int64  `json:"rollout"` // the start height of the rollout that offered it
	Vendor   string `json:"vendor"`
	Seq      uint64 `json:"seq"`
	Version  string `json:"version"`
	Digest   []byte `json:"digest"`
	Attempts int    `json:"attempts"`
	GaveUp   bool   `json:"gave_up,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Reported bool   `json:"reported,omitempty"` // the failure is on the ledger
}

// ErrFirmwareRefused wraps the reason a release may not be installed: a
// sequence number not above the running one (rollback), another class, a
// manifest not signed by the vendor's key.
var ErrFirmwareRefused = errors.New("device: firmware refused")

// wake runs the update step of one agent wake.
func (u *FirmwareUpdater) wake(ctx context.Context, d *Device) error {
	if u.Every <= 0 || u.Installer == nil {
		return nil
	}
	n := u.wakes
	u.wakes++
	if n%u.Every != 0 {
		return nil
	}
	r, err := u.Check(ctx, d)
	if u.OnResult != nil && r != nil {
		u.OnResult(*r)
	}
	return err
}

// Check runs one update check now (the agent calls it every Every wakes).
// The error is what stopped the check (no gateway answered, a report
// could not be sent); a failed install attempt is in the result, not an
// error.
func (u *FirmwareUpdater) Check(ctx context.Context, d *Device) (*UpdateResult, error) {
	if u.Installer == nil {
		return nil, errors.New("device: firmware updater: no installer")
	}
	if err := u.load(d); err != nil {
		return nil, err
	}
	o, err := d.OfferedFirmware(ctx)
	if err != nil {
		return nil, err
	}
	run, err := u.Installer.Running()
	if err != nil {
		return nil, fmt.Errorf("device: the running firmware: %w", err)
	}
	res := &UpdateResult{Action: UpdateNone, Offer: o, Running: run}
	if !o.Offered {
		return res, nil
	}
	m := &o.Release.Manifest
	if bytes.Equal(m.Digest, run.Digest) {
		if o.Device.Firmware != run.Version { // installed, the report did not get through
			if err := d.ReportFirmware(ctx, run.Version, run.Digest); err != nil {
				return res, err
			}
			res.Action = UpdateReported
		}
		return res, nil
	}
	st := u.st
	if st == nil || st.Rollout != o.Rollout.Start || st.Vendor != m.Vendor || st.Seq != m.Seq || !bytes.Equal(st.Digest, m.Digest) {
		// Another release, or the same one rolled out anew: a new decision
		// of the organisation, tried afresh.
		st = &updateState{Rollout: o.Rollout.Start, Vendor: m.Vendor, Seq: m.Seq, Version: m.Version, Digest: m.Digest}
		u.st, u.skip = st, 0
	}
	res.Attempt = st.Attempts
	if st.GaveUp {
		res.Action = UpdateWaiting
		if !st.Reported { // the report of the failure did not get through
			return res, u.reportGiveUp(ctx, d, res)
		}
		return res, nil
	}
	if u.skip > 0 {
		u.skip--
		res.Action = UpdateWaiting
		return res, nil
	}

	err = u.install(ctx, d, o, run)
	if err == nil {
		u.st = nil
		if err := u.save(d); err != nil {
			return res, err
		}
		res.Action = UpdateInstalled
		if res.Running, err = u.Installer.Running(); err != nil {
			return res, err
		}
		return res, d.ReportFirmware(ctx, m.Version, m.Digest)
	}
	if ctx.Err() != nil {
		return res, err // stopped, not failed
	}
	st.Attempts++
	res.Attempt, res.Err = st.Attempts, err
	max := u.MaxAttempts
	if max <= 0 {
		max = DefaultUpdateAttempts
	}
	if errors.Is(err, ErrFirmwareRefused) || st.Attempts >= max {
		st.GaveUp, st.Reason = true, err.Error()
		res.Action = UpdateGaveUp
		d.cfg.log.Warn("device: giving up on a firmware release", "device", d.id, "version", m.Version, "seq", m.Seq, "attempts", st.Attempts, "err", err)
		return res, u.reportGiveUp(ctx, d, res)
	}
	u.skip = 1<<(st.Attempts-1) - 1
	res.Action = UpdateRetry
	d.cfg.log.Warn("device: firmware install failed; trying again later", "device", d.id, "version", m.Version, "seq", m.Seq,
		"attempt", st.Attempts, "next_in_checks", u.skip+1, "err", err)
	return res, u.save(d)
}

// install checks, fetches and installs the offered release.
func (u *FirmwareUpdater) install(ctx context.Context, d *Device, o *FirmwareOffer, run Firmware) error {
	rel := o.Release
	m := &rel.Manifest
	if m.Seq <= run.Seq {
		return fmt.Errorf("%w: %w: offered %s #%d, running %s #%d", ErrFirmwareRefused, firmware.ErrRollback, m.Version, m.Seq, run.Version, run.Seq)
	}
	var key identity.PublicKey
	if u.VendorKeys != nil {
		k, ok := u.VendorKeys[m.Vendor]
		if !ok {
			return fmt.Errorf("%w: no pinned key for vendor %s", ErrFirmwareRefused, m.Vendor)
		}
		key = k
	} else {
		k, err := identity.ParseDID(rel.Signer)
		if err != nil {
			return fmt.Errorf("%w: the release's signer %s: %v", ErrFirmwareRefused, rel.Signer, err)
		}
		key = k
	}
	vm, err := firmware.Verify(rel.Signed, key, o.Class, run.Seq)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFirmwareRefused, err)
	}
	if vm.Vendor != m.Vendor || vm.Seq != m.Seq || vm.Size != m.Size || vm.CID != m.CID || !bytes.Equal(vm.Digest, m.Digest) {
		return fmt.Errorf("%w: the signed manifest is not the release's record", ErrFirmwareRefused)
	}
	staged, err := u.Installer.Stage(vm)
	if err != nil {
		return fmt.Errorf("staging the image: %w", err)
	}
	if err := d.FetchFirmware(ctx, rel, staged); err != nil {
		return errors.Join(err, staged.Abort())
	}
	if err := staged.Install(); err != nil {
		return fmt.Errorf("installing %s #%d: %w", m.Version, m.Seq, errors.Join(err, staged.Abort()))
	}
	return nil
}

func (u *FirmwareUpdater) reportGiveUp(ctx context.Context, d *Device, res *UpdateResult) error {
	st := u.st
	if err := u.save(d); err != nil {
		return err
	}
	reason := fmt.Sprintf("gave up after %d attempt(s): %s", st.Attempts, st.Reason)
	if err := d.ReportFirmwareFailure(ctx, st.Version, st.Digest, reason); err != nil {
		return err
	}
	st.Reported = true
	return u.save(d)
}

func (u *FirmwareUpdater) path(d *Device) string {
	if d.cfg.stateDir == "" {
		return ""
	}
	return filepath.Join(d.cfg.stateDir, UpdateStateFile)
}

func (u *FirmwareUpdater) load(d *Device) error {
	if u.loaded {
		return nil
	}
	u.loaded = true
	p := u.path(d)
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("device: reading the update state: %w", err)
	}
	st, err := parseUpdateState(b)
	if err != nil {
		// Only a count of attempts: start again rather than never update.
		d.cfg.log.Warn("device: the firmware update state is unreadable; counting attempts afresh", "device", d.id, "file", p, "err", err)
		return nil
	}
	u.st = st
	return nil
}

// parseUpdateState decodes and checks the updater's state file.
func parseUpdateState(b []byte) (*updateState, error) {
	var st updateState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	if st.Seq == 0 || len(st.Digest) != sha256.Size || st.Attempts < 0 {
		return nil, fmt.Errorf("it names release #%d, a %d-byte digest, %d attempts; want a release, its SHA-256 and attempts ≥ 0", st.Seq, len(st.Digest), st.Attempts)
	}
	return &st, nil
}

func (u *FirmwareUpdater) save(d *Device) error {
	p := u.path(d)
	if p == "" {
		return nil
	}
	if u.st == nil {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.Marshal(u.st)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, b)
}

// FirmwareSlotsDir is where OpenSlots keeps a device's slots by default:
// this directory under its state directory.
const FirmwareSlotsDir = "firmware"
