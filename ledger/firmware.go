package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/thingnet/thingnet/identity"
)

// Firmware tx kinds (docs/files.md, "Firmware"): a vendor publishes a signed
// release; an organisation approves a release for its devices of a class; a
// device reports what it installed, which its history keeps, and a report of
// an image its organisation did not approve flags the device.
const (
	KindFirmwareRelease = "firmware.release"
	KindFirmwareApprove = "firmware.approve"
	KindFirmwareReport  = "firmware.report"

	// LabelFirmwareFlag is set on a device that reported an unapproved image.
	LabelFirmwareFlag = "firmware_unapproved"
)

const (
	prefixFirmware   = "fw/" // fw/<vendor>/<class>\x00<seq BE> -> FirmwareRelease
	prefixFwApproval = "fa/" // fa/<org>/<class>\x00<digest hex> -> FirmwareApproval
	prefixFwLatest   = "fl/" // fl/<vendor>/<class> -> u64 BE last release seq
)

// FirmwareContext is the COSE external data of a signed firmware manifest.
var FirmwareContext = []byte("thingnet/firmware/v1")

// FirmwareManifest is a firmware release (a SUIT-like subset), signed by
// the vendor as a COSE_Sign1 over its deterministic CBOR.
type FirmwareManifest struct {
	Vendor  string `cbor:"1,keyasint" json:"vendor"`  // the vendor's organisation
	Class   string `cbor:"2,keyasint" json:"class"`   // device class it is for
	Version string `cbor:"3,keyasint" json:"version"` // e.g. "2.1.0"
	Seq     uint64 `cbor:"4,keyasint" json:"seq"`     // strictly increasing per vendor and class: no rollback
	Digest  []byte `cbor:"5,keyasint" json:"digest"`  // SHA-256 of the image
	Size    uint64 `cbor:"6,keyasint" json:"size"`
	CID     string `cbor:"7,keyasint,omitempty" json:"cid,omitempty"` // where the image is (files)
}

// Validate checks the fields.
func (m *FirmwareManifest) Validate() error {
	if err := validateOrgID(m.Vendor); err != nil {
		return fmt.Errorf("vendor: %w", err)
	}
	if m.Class == "" || m.Version == "" || m.Seq == 0 || m.Size == 0 {
		return errors.New("a firmware manifest needs class, version, seq ≥ 1 and size")
	}
	if err := validateText("class", m.Class, 64); err != nil {
		return err
	}
	if err := validateText("version", m.Version, 64); err != nil {
		return err
	}
	if len(m.Digest) != sha256.Size {
		return fmt.Errorf("firmware digest is %d bytes; want SHA-256 (32)", len(m.Digest))
	}
	if m.CID != "" {
		return validateCID(m.CID)
	}
	return nil
}

// DecodeFirmware parses a signed manifest (not verifying the signature) and
// returns it with the signer's account id (the COSE kid).
func DecodeFirmware(raw []byte) (*FirmwareManifest, *identity.Sign1, error) {
	s, err := identity.DecodeSign1(raw)
	if err != nil {
		return nil, nil, err
	}
	m := new(FirmwareManifest)
	if err := Unmarshal(s.Payload, m); err != nil {
		return nil, nil, fmt.Errorf("firmware manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, nil, err
	}
	return m, s, nil
}

// FirmwareRelease publishes a signed manifest; the tx signer must be the
// manifest's signer, an admin of the vendor organisation.
type FirmwareRelease struct {
	Manifest []byte `cbor:"1,keyasint"` // COSE_Sign1
}

// FirmwareApprove lets Org's devices of Class run the release Vendor/Seq.
type FirmwareApprove struct {
	Org    string `cbor:"1,keyasint"`
	Vendor string `cbor:"2,keyasint"`
	Class  string `cbor:"3,keyasint"`
	Seq    uint64 `cbor:"4,keyasint"`
}

// FirmwareReport is a device's report of the image it runs.
type FirmwareReport struct {
	Digest  []byte `cbor:"1,keyasint"`
	Version string `cbor:"2,keyasint"`
	Failed  bool   `cbor:"3,keyasint,omitempty"` // the install of this image failed; the device runs what it ran
	Reason  string `cbor:"4,keyasint,omitempty"` // why it failed (only with Failed), kept in the device's history
}

func (*FirmwareRelease) Kind() string { return KindFirmwareRelease }
func (*FirmwareApprove) Kind() string { return KindFirmwareApprove }
func (*FirmwareReport) Kind() string  { return KindFirmwareReport }

func (m *FirmwareRelease) ValidateBasic() error {
	_, _, err := DecodeFirmware(m.Manifest)
	return err
}

func (m *FirmwareApprove) ValidateBasic() error {
	if err := validateOrgID(m.Org); err != nil {
		return err
	}
	if err := validateOrgID(m.Vendor); err != nil {
		return fmt.Errorf("vendor: %w", err)
	}
	if m.Class == "" || m.Seq == 0 {
		return errors.New("approve names a class and a release seq ≥ 1")
	}
	return validateText("class", m.Class, 64)
}

func (m *FirmwareReport) ValidateBasic() error {
	if len(m.Digest) != sha256.Size {
		return fmt.Errorf("firmware digest is %d bytes; want SHA-256 (32)", len(m.Digest))
	}
	if m.Reason != "" {
		if !m.Failed {
			return errors.New("a firmware report gives a reason only for a failed install")
		}
		if err := validateText("reason", m.Reason, MaxFirmwareReason); err != nil {
			return err
		}
	}
	return validateText("version", m.Version, 64)
}

// MaxFirmwareReason bounds the reason of a failed firmware report (bytes).
const MaxFirmwareReason = 200

// FirmwareReleaseRecord is a published release.
type FirmwareReleaseRecord struct {
	Manifest FirmwareManifest `cbor:"1,keyasint" json:"manifest"`
	Signed   []byte           `cbor:"2,keyasint" json:"signed"` // the COSE_Sign1, for devices to check themselves
	Signer   string           `cbor:"3,keyasint" json:"signer"`
	Height   int64            `cbor:"4,keyasint" json:"height"`
}

// FirmwareApproval is an organisation's approval of an image for a class.
type FirmwareApproval struct {
	Org     string `cbor:"1,keyasint" json:"org"`
	Vendor  string `cbor:"2,keyasint" json:"vendor"`
	Class   string `cbor:"3,keyasint" json:"class"`
	Seq     uint64 `cbor:"4,keyasint" json:"seq"`
	Version string `cbor:"5,keyasint" json:"version"`
	Digest  []byte `cbor:"6,keyasint" json:"digest"`
	Height  int64  `cbor:"7,keyasint" json:"height"`
}

// FirmwareKey is the state key of a release.
func FirmwareKey(vendor, class string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixFirmware+vendor+"/"+class+"\x00"), seq)
}

// FirmwareApprovalKey is the state key of an approval.
func FirmwareApprovalKey(org, class string, digest []byte) []byte {
	return []byte(prefixFwApproval + org + "/" + class + "\x00" + hex.EncodeToString(digest))
}

// FirmwareRelease returns a release.
func (s *State) FirmwareRelease(vendor, class string, seq uint64) (*FirmwareReleaseRecord, error) {
	var r FirmwareReleaseRecord
	ok, err := s.get(FirmwareKey(vendor, class, seq), &r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("firmware %s/%s #%d: %w", vendor, class, seq, ErrNotFound)
	}
	return &r, nil
}

// FirmwareApproved returns org's approval of an image for class.
func (s *State) FirmwareApproved(org, class string, digest []byte) (*FirmwareApproval, error) {
	var a FirmwareApproval
	ok, err := s.get(FirmwareApprovalKey(org, class, digest), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("firmware %x for %s/%s: %w", digest, org, class, ErrNotFound)
	}
	return &a, nil
}

func (x *txExec) firmwareRelease(m *FirmwareRelease) error {
	man, sig, _ := DecodeFirmware(m.Manifest) // ValidateBasic decoded it
	if sig.KID != x.tx.Signer {
		return errf(CodeUnauthorized, "the manifest is signed by %s, the tx by %s: the vendor admin signs both", sig.KID, x.tx.Signer)
	}
	if _, err := x.adminOrg(man.Vendor); err != nil {
		return err
	}
	pub, err := identity.ParseDID(x.tx.Signer)
	if err != nil {
		return errf(CodeUnauthorized, "vendor key %s: %v", x.tx.Signer, err)
	}
	if err := sig.Verify(pub, FirmwareContext); err != nil {
		return errf(CodeUnauthorized, "firmware manifest signature: %v", err)
	}
	latest, err := x.st.u64([]byte(prefixFwLatest + man.Vendor + "/" + man.Class))
	if err != nil {
		return err
	}
	if man.Seq <= latest {
		return errf(CodeConflict, "release seq %d is not above the last release %d of %s/%s", man.Seq, latest, man.Vendor, man.Class)
	}
	x.buf.set([]byte(prefixFwLatest+man.Vendor+"/"+man.Class), binary.BigEndian.AppendUint64(nil, man.Seq))
	x.buf.set(FirmwareKey(man.Vendor, man.Class, man.Seq), &FirmwareReleaseRecord{Manifest: *man, Signed: m.Manifest, Signer: x.tx.Signer, Height: x.height})
	x.emit("firmware", "action", "release", "vendor", man.Vendor, "class", man.Class, "seq", strconv.FormatUint(man.Seq, 10), "version", man.Version)
	return nil
}

func (x *txExec) firmwareApprove(m *FirmwareApprove) error {
	if _, err := x.adminOrg(m.Org); err != nil {
		return err
	}
	r, err := x.st.FirmwareRelease(m.Vendor, m.Class, m.Seq)
	if err != nil {
		return notFound(err)
	}
	x.buf.set(FirmwareApprovalKey(m.Org, m.Class, r.Manifest.Digest), &FirmwareApproval{
		Org: m.Org, Vendor: m.Vendor, Class: m.Class, Seq: m.Seq, Version: r.Manifest.Version, Digest: r.Manifest.Digest, Height: x.height})
	x.emit("firmware", "action", "approve", "org", m.Org, "vendor", m.Vendor, "class", m.Class, "seq", strconv.FormatUint(m.Seq, 10))
	return nil
}

func (x *txExec) firmwareReport(m *FirmwareReport) error {
	if x.device == nil {
		return errf(CodeUnauthorized, "only a device reports the firmware it runs")
	}
	d, err := x.st.Device(x.device.ID)
	if err != nil {
		return notFound(err)
	}
	if err := x.countRollout(d, m); err != nil {
		return err
	}
	if m.Failed {
		note := fmt.Sprintf("firmware install FAILED: %s digest=%x", m.Version, m.Digest)
		if m.Reason != "" {
			note += ": " + m.Reason
		}
		x.record(d, note)
		return nil
	}
	_, err = x.st.FirmwareApproved(d.Org, d.Class, m.Digest)
	approved := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	d.Firmware = m.Version
	note := fmt.Sprintf("firmware=%s digest=%x", m.Version, m.Digest)
	if approved {
		delete(d.Labels, LabelFirmwareFlag)
	} else {
		if d.Labels == nil {
			d.Labels = map[string]string{}
		}
		d.Labels[LabelFirmwareFlag] = hex.EncodeToString(m.Digest[:8])
		note += " NOT APPROVED"
		x.emit("firmware", "action", "flagged", "device", d.ID, "digest", hex.EncodeToString(m.Digest))
	}
	x.record(d, note)
	return nil
}

// KindFirmwareRollout starts (or replaces) a rollout of an approved release
// to an organisation's devices of a class, in waves.
const KindFirmwareRollout = "firmware.rollout"

const (
	prefixFwRollout = "fr/" // fr/<org>/<class> -> FirmwareRolloutRecord
	prefixFwOutcome = "fo/" // fo/<org>/<class>\x00<rollout start u64 BE><device did> -> RolloutOutcome
)

// FirmwareRollout offers release Vendor/Seq to Org's devices of Class in
// waves: wave w (from 1) covers the devices whose bucket (0..99, from the
// SHA-256 of rollout id and device id) is below w × Percent; a new wave
// opens every BlocksPerWave blocks. When MaxFailures devices have reported
// a failed install of it (each device counts once), the rollout is
// aborted: no device is offered it.
type FirmwareRollout struct {
	Org           string `cbor:"1,keyasint" json:"org"`
	Vendor        string `cbor:"2,keyasint" json:"vendor"`
	Class         string `cbor:"3,keyasint" json:"class"`
	Seq           uint64 `cbor:"4,keyasint" json:"seq"`
	Percent       uint32 `cbor:"5,keyasint" json:"percent"`         // devices per wave, percent 1..100
	BlocksPerWave uint32 `cbor:"6,keyasint" json:"blocks_per_wave"` // ≥ 1
	MaxFailures   uint32 `cbor:"7,keyasint" json:"max_failures"`    // abort threshold, ≥ 1
}

func (*FirmwareRollout) Kind() string { return KindFirmwareRollout }
func (m *FirmwareRollout) ValidateBasic() error {
	if err := (&FirmwareApprove{Org: m.Org, Vendor: m.Vendor, Class: m.Class, Seq: m.Seq}).ValidateBasic(); err != nil {
		return err
	}
	if m.Percent < 1 || m.Percent > 100 || m.BlocksPerWave < 1 || m.MaxFailures < 1 {
		return errors.New("a rollout needs percent 1..100, blocks per wave ≥ 1 and max failures ≥ 1")
	}
	return nil
}

// Rollout statuses.
const (
	RolloutActive  = "active"
	RolloutAborted = "aborted"
)

// FirmwareRolloutRecord is a rollout and its counts.
type FirmwareRolloutRecord struct {
	FirmwareRollout `cbor:"1,keyasint" json:"rollout"`
	Version         string `cbor:"2,keyasint" json:"version"`
	Digest          []byte `cbor:"3,keyasint" json:"digest"`
	Start           int64  `cbor:"4,keyasint" json:"start"` // height
	Installed       uint32 `cbor:"5,keyasint" json:"installed"`
	Failed          uint32 `cbor:"6,keyasint" json:"failed"`
	Status          string `cbor:"7,keyasint" json:"status"`
	Aborted         int64  `cbor:"8,keyasint,omitempty" json:"aborted,omitempty"`
}

// FirmwareRolloutKey is the state key of an org's rollout for a class.
func FirmwareRolloutKey(org, class string) []byte { return []byte(prefixFwRollout + org + "/" + class) }

// FirmwareOutcomeKey is the state key of what device reported to the
// rollout of org's class that started at height start.
func FirmwareOutcomeKey(org, class string, start int64, device string) []byte {
	k := binary.BigEndian.AppendUint64([]byte(prefixFwOutcome+org+"/"+class+"\x00"), uint64(start))
	return append(k, device...)
}

// RolloutOutcome is what one device reported to a rollout: each device
// counts at most once as installed and at most once as failed, so a device
// that reports again (a retry, a bug, a compromised device) cannot move the
// counts — in particular it cannot abort its organisation's rollout alone.
type RolloutOutcome struct {
	Installed int64 `cbor:"1,keyasint,omitempty" json:"installed,omitempty"` // height of its first install report
	Failed    int64 `cbor:"2,keyasint,omitempty" json:"failed,omitempty"`    // height of its first failure report
}

// Wave is the wave open at height h (from 1).
func (r *FirmwareRolloutRecord) Wave(h int64) uint64 {
	if h < r.Start {
		return 0
	}
	return 1 + uint64(h-r.Start)/uint64(r.BlocksPerWave)
}

// Bucket is a device's place in a rollout, 0..99.
func (r *FirmwareRolloutRecord) Bucket(device string) uint64 {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d\x00%s", r.Org, r.Class, r.Start, device)))
	return binary.BigEndian.Uint64(h[:8]) % 100
}

// Offers reports whether the rollout offers its release to device at height h.
func (r *FirmwareRolloutRecord) Offers(device string, h int64) bool {
	return r.Status == RolloutActive && r.Bucket(device) < r.Wave(h)*uint64(r.Percent)
}

// FirmwareRolloutFor returns org's rollout for class.
func (s *State) FirmwareRolloutFor(org, class string) (*FirmwareRolloutRecord, error) {
	var r FirmwareRolloutRecord
	ok, err := s.get(FirmwareRolloutKey(org, class), &r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("rollout for %s/%s: %w", org, class, ErrNotFound)
	}
	return &r, nil
}

func (x *txExec) firmwareRollout(m *FirmwareRollout) error {
	if _, err := x.adminOrg(m.Org); err != nil {
		return err
	}
	r, err := x.st.FirmwareRelease(m.Vendor, m.Class, m.Seq)
	if err != nil {
		return notFound(err)
	}
	if _, err := x.st.FirmwareApproved(m.Org, m.Class, r.Manifest.Digest); err != nil {
		return errf(CodeInvalid, "approve release %s/%s #%d for %s first (firmware.approve)", m.Vendor, m.Class, m.Seq, m.Org)
	}
	x.buf.set(FirmwareRolloutKey(m.Org, m.Class), &FirmwareRolloutRecord{FirmwareRollout: *m, Version: r.Manifest.Version,
		Digest: r.Manifest.Digest, Start: x.height, Status: RolloutActive})
	x.emit("firmware", "action", "rollout", "org", m.Org, "class", m.Class, "seq", strconv.FormatUint(m.Seq, 10))
	return nil
}

// countRollout counts a device's report against its org's rollout for the
// image — each device once as installed and once as failed (RolloutOutcome)
// — aborting it at the failure threshold.
func (x *txExec) countRollout(d *Device, m *FirmwareReport) error {
	r, err := x.st.FirmwareRolloutFor(d.Org, d.Class)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.Status != RolloutActive || string(r.Digest) != string(m.Digest) {
		return nil
	}
	var o RolloutOutcome
	key := FirmwareOutcomeKey(d.Org, d.Class, r.Start, d.ID)
	if _, err := x.st.get(key, &o); err != nil {
		return err
	}
	if m.Failed && o.Failed != 0 || !m.Failed && o.Installed != 0 {
		return nil // this device was counted already
	}
	if m.Failed {
		o.Failed = x.height
	} else {
		o.Installed = x.height
	}
	x.buf.set(key, &o)
	if m.Failed {
		r.Failed++
		if r.Failed >= r.MaxFailures {
			r.Status, r.Aborted = RolloutAborted, x.height
			x.emit("firmware", "action", "abort", "org", r.Org, "class", r.Class, "failed", strconv.FormatUint(uint64(r.Failed), 10))
		}
	} else {
		r.Installed++
	}
	x.buf.set(FirmwareRolloutKey(d.Org, d.Class), r)
	return nil
}
