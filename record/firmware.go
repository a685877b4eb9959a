package record

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

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
	PrefixFirmware   = "fw/" // fw/<vendor>/<class>\x00<seq BE> -> FirmwareRelease
	PrefixFwApproval = "fa/" // fa/<org>/<class>\x00<digest hex> -> FirmwareApproval
	PrefixFwLatest   = "fl/" // fl/<vendor>/<class> -> u64 BE last release seq
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

func (*FirmwareReport) Kind() string { return KindFirmwareReport }

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
	return binary.BigEndian.AppendUint64([]byte(PrefixFirmware+vendor+"/"+class+"\x00"), seq)
}

// FirmwareApprovalKey is the state key of an approval.
func FirmwareApprovalKey(org, class string, digest []byte) []byte {
	return []byte(PrefixFwApproval + org + "/" + class + "\x00" + hex.EncodeToString(digest))
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

// Waves is the rollout's wave arithmetic (record.Waves, shared with jobs).
func (r *FirmwareRolloutRecord) Waves() Waves {
	return Waves{Seed: fmt.Sprintf("%s/%s/%d", r.Org, r.Class, r.Start), Start: r.Start, Percent: r.Percent, Blocks: r.BlocksPerWave}
}

// Wave is the wave open at height h (from 1).
func (r *FirmwareRolloutRecord) Wave(h int64) uint64 { return r.Waves().Wave(h) }

// Bucket is a device's place in a rollout, 0..99.
func (r *FirmwareRolloutRecord) Bucket(device string) uint64 { return r.Waves().Bucket(device) }

// Offers reports whether the rollout offers its release to device at height h.
func (r *FirmwareRolloutRecord) Offers(device string, h int64) bool {
	return r.Status == RolloutActive && r.Waves().Open(device, h)
}
