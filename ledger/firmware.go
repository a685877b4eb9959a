package ledger

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// FirmwareRelease returns a release.
func (s *State) FirmwareRelease(vendor, class string, seq uint64) (*record.FirmwareReleaseRecord, error) {
	var r record.FirmwareReleaseRecord
	ok, err := s.get(record.FirmwareKey(vendor, class, seq), &r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("firmware %s/%s #%d: %w", vendor, class, seq, ErrNotFound)
	}
	return &r, nil
}

// FirmwareApproved returns org's approval of an image for class.
func (s *State) FirmwareApproved(org, class string, digest []byte) (*record.FirmwareApproval, error) {
	var a record.FirmwareApproval
	ok, err := s.get(record.FirmwareApprovalKey(org, class, digest), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("firmware %x for %s/%s: %w", digest, org, class, ErrNotFound)
	}
	return &a, nil
}

func (x *txExec) firmwareRelease(m *record.FirmwareRelease) error {
	man, sig, _ := record.DecodeFirmware(m.Manifest) // ValidateBasic decoded it
	if sig.KID != x.tx.Signer {
		return record.Errf(record.CodeUnauthorized, "the manifest is signed by %s, the tx by %s: the vendor admin signs both", sig.KID, x.tx.Signer)
	}
	if _, err := x.adminOrg(man.Vendor); err != nil {
		return err
	}
	pub, err := identity.ParseDID(x.tx.Signer)
	if err != nil {
		return record.Errf(record.CodeUnauthorized, "vendor key %s: %v", x.tx.Signer, err)
	}
	if err := sig.Verify(pub, record.FirmwareContext); err != nil {
		return record.Errf(record.CodeUnauthorized, "firmware manifest signature: %v", err)
	}
	latest, err := x.st.u64([]byte(record.PrefixFwLatest + man.Vendor + "/" + man.Class))
	if err != nil {
		return err
	}
	if man.Seq <= latest {
		return record.Errf(record.CodeConflict, "release seq %d is not above the last release %d of %s/%s", man.Seq, latest, man.Vendor, man.Class)
	}
	x.buf.set([]byte(record.PrefixFwLatest+man.Vendor+"/"+man.Class), binary.BigEndian.AppendUint64(nil, man.Seq))
	x.buf.set(record.FirmwareKey(man.Vendor, man.Class, man.Seq), &record.FirmwareReleaseRecord{Manifest: *man, Signed: m.Manifest, Signer: x.tx.Signer, Height: x.height})
	x.emit("firmware", "action", "release", "vendor", man.Vendor, "class", man.Class, "seq", strconv.FormatUint(man.Seq, 10), "version", man.Version)
	return nil
}

func (x *txExec) firmwareApprove(m *record.FirmwareApprove) error {
	if _, err := x.adminOrg(m.Org); err != nil {
		return err
	}
	r, err := x.st.FirmwareRelease(m.Vendor, m.Class, m.Seq)
	if err != nil {
		return notFound(err)
	}
	x.buf.set(record.FirmwareApprovalKey(m.Org, m.Class, r.Manifest.Digest), &record.FirmwareApproval{
		Org: m.Org, Vendor: m.Vendor, Class: m.Class, Seq: m.Seq, Version: r.Manifest.Version, Digest: r.Manifest.Digest, Height: x.height})
	x.emit("firmware", "action", "approve", "org", m.Org, "vendor", m.Vendor, "class", m.Class, "seq", strconv.FormatUint(m.Seq, 10))
	return nil
}

func (x *txExec) firmwareReport(m *record.FirmwareReport) error {
	if x.device == nil {
		return record.Errf(record.CodeUnauthorized, "only a device reports the firmware it runs")
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
		delete(d.Labels, record.LabelFirmwareFlag)
	} else {
		if d.Labels == nil {
			d.Labels = map[string]string{}
		}
		d.Labels[record.LabelFirmwareFlag] = hex.EncodeToString(m.Digest[:8])
		note += " NOT APPROVED"
		x.emit("firmware", "action", "flagged", "device", d.ID, "digest", hex.EncodeToString(m.Digest))
	}
	x.record(d, note)
	return nil
}

// FirmwareRolloutFor returns org's rollout for class.
func (s *State) FirmwareRolloutFor(org, class string) (*record.FirmwareRolloutRecord, error) {
	var r record.FirmwareRolloutRecord
	ok, err := s.get(record.FirmwareRolloutKey(org, class), &r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("rollout for %s/%s: %w", org, class, ErrNotFound)
	}
	return &r, nil
}

func (x *txExec) firmwareRollout(m *record.FirmwareRollout) error {
	if _, err := x.adminOrg(m.Org); err != nil {
		return err
	}
	r, err := x.st.FirmwareRelease(m.Vendor, m.Class, m.Seq)
	if err != nil {
		return notFound(err)
	}
	if _, err := x.st.FirmwareApproved(m.Org, m.Class, r.Manifest.Digest); err != nil {
		return record.Errf(record.CodeInvalid, "approve release %s/%s #%d for %s first (firmware.approve)", m.Vendor, m.Class, m.Seq, m.Org)
	}
	x.buf.set(record.FirmwareRolloutKey(m.Org, m.Class), &record.FirmwareRolloutRecord{FirmwareRollout: *m, Version: r.Manifest.Version,
		Digest: r.Manifest.Digest, Start: x.height, Status: record.RolloutActive})
	x.emit("firmware", "action", "rollout", "org", m.Org, "class", m.Class, "seq", strconv.FormatUint(m.Seq, 10))
	return nil
}

// countRollout counts a device's report against its org's rollout for the
// image — each device once as installed and once as failed (RolloutOutcome)
// — aborting it at the failure threshold.
func (x *txExec) countRollout(d *record.Device, m *record.FirmwareReport) error {
	r, err := x.st.FirmwareRolloutFor(d.Org, d.Class)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.Status != record.RolloutActive || string(r.Digest) != string(m.Digest) {
		return nil
	}
	var o record.RolloutOutcome
	key := record.FirmwareOutcomeKey(d.Org, d.Class, r.Start, d.ID)
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
			r.Status, r.Aborted = record.RolloutAborted, x.height
			x.emit("firmware", "action", "abort", "org", r.Org, "class", r.Class, "failed", strconv.FormatUint(uint64(r.Failed), 10))
		}
	} else {
		r.Installed++
	}
	x.buf.set(record.FirmwareRolloutKey(d.Org, d.Class), r)
	return nil
}
