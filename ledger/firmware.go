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
	return validateText("version", m.Version, 64)
}

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
