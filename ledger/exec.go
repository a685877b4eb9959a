package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// txExec executes one authenticated transaction against the working state.
// Every check happens before the first write; writes are staged in buf.
type txExec struct {
	st      *State  // reads through buf
	buf     *buffer // staged writes
	tx      *record.Tx
	chainID string
	height  int64
	device  *record.Device // the signer's device record, if the signer is a device

	events     []abci.Event
	valUpdates []abci.ValidatorUpdate

	progs *progCache   // compiled agreements (caches.go)
	sink  *[]eventSink // events of agreement and credit execution (credits.go)
}

func (x *txExec) run() error {
	switch m := x.tx.Msg.(type) {
	case *record.OrgCreate:
		return x.orgCreate(m)
	case *record.OrgAdmin:
		return x.orgAdmin(m)
	case *record.OrgAdminRotate:
		return x.orgAdminRotate(m) // governance.go
	case *record.OrgDataKeyShare:
		return x.orgDataKeyShare(m) // datakey_share.go
	case *record.DeviceRegister:
		return x.deviceRegister(m)
	case *record.DeviceRotate:
		return x.deviceRotate(m)
	case *record.DeviceStatus:
		return x.deviceStatus(m)
	case *record.DeviceUpdate:
		return x.deviceUpdate(m)
	case *record.GrantAdd:
		return x.grantAdd(m)
	case *record.GrantRevoke:
		return x.grantRevoke(m)
	case *record.ValidatorUpdate:
		return x.validatorUpdate(m)
	case *record.DataAnchor:
		return x.dataAnchor(m)
	case *record.AgreementDeploy:
		return x.agreementDeploy(m)
	case *record.AgreementAccept:
		return x.agreementAccept(m)
	case *record.AgreementCall:
		return x.agreementCall(m)
	case *record.CreditTransfer:
		return x.creditTransfer(m)
	case *record.CreditMint:
		return x.creditMint(m)
	case *record.ExchangeAnchor:
		return x.exchangeAnchor(m)
	case *record.FilePublish:
		return x.filePublish(m)
	case *record.FileShare:
		return x.fileShare(m)
	case *record.FileRevoke:
		return x.fileRevoke(m)
	case *record.FileRekey:
		return x.fileRekey(m)
	case *record.FilePinMsg:
		return x.filePin(m)
	case *record.FirmwareRelease:
		return x.firmwareRelease(m)
	case *record.FirmwareApprove:
		return x.firmwareApprove(m)
	case *record.FirmwareReport:
		return x.firmwareReport(m)
	case *record.FirmwareRollout:
		return x.firmwareRollout(m)
	case *record.OrgPolicy:
		return x.orgPolicy(m)
	case *record.OrgDataKey:
		return x.orgDataKey(m)
	case *record.DataErase:
		return x.dataErase(m)
	case *record.UpgradePlan:
		return x.upgradePlan(m) // upgrade.go
	case *record.ConfigSet:
		return x.configSet(m) // config.go
	case *record.LogArchiveMsg:
		return x.logArchive(m) // archive.go
	case *record.JobCreate:
		return x.jobCreate(m) // jobs.go
	case *record.JobCancel:
		return x.jobCancel(m)
	case *record.JobReport:
		return x.jobReport(m)
	default:
		return record.Errf(record.CodeUnknownKind, "no handler for %T", m)
	}
}

func (x *txExec) emit(typ string, kv ...string) {
	ev := abci.Event{Type: typ}
	for i := 0; i+1 < len(kv); i += 2 {
		ev.Attributes = append(ev.Attributes, abci.EventAttribute{Key: kv[i], Value: kv[i+1], Index: true})
	}
	x.events = append(x.events, ev)
}

// notFound maps ErrNotFound to CodeNotFound and leaves other errors alone.
func notFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return record.Errf(record.CodeNotFound, "%v", err)
	}
	return err
}

// adminOrg loads organisation id if the signer is one of its admins.
func (x *txExec) adminOrg(id string) (*record.Org, error) { return adminOf(x.st, x.tx.Signer, id) }

func (x *txExec) orgCreate(m *record.OrgCreate) error {
	if x.device != nil {
		return record.Errf(record.CodeUnauthorized, "a device cannot create an organisation")
	}
	if _, err := x.st.Org(m.ID); err == nil {
		return record.Errf(record.CodeConflict, "organisation %q already exists", m.ID)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := x.orgCreateAllowed(m); err != nil { // governance.go
		return err
	}
	x.buf.set(record.OrgKey(m.ID), &record.Org{ID: m.ID, Name: m.Name, Admins: []string{x.tx.Signer}, Created: x.height})
	x.buf.set(adminKey(x.tx.Signer, m.ID), marker)
	x.emit("org", "id", m.ID, "action", "create")
	return nil
}

func (x *txExec) orgAdmin(m *record.OrgAdmin) error {
	o, err := x.adminOrg(m.Org)
	if err != nil {
		return err
	}
	has := o.IsAdmin(m.Admin)
	if m.Kind() == record.KindOrgAdminAdd {
		if has {
			return record.Errf(record.CodeConflict, "%s is already an admin of %q", m.Admin, m.Org)
		}
		if d, err := x.st.Device(m.Admin); err == nil {
			return record.Errf(record.CodeInvalid, "%s is a device of %q; admins are people's keys", m.Admin, d.Org)
		}
		o.Admins = append(o.Admins, m.Admin)
		slices.Sort(o.Admins)
		x.buf.set(adminKey(m.Admin, m.Org), marker)
	} else {
		if !has {
			return record.Errf(record.CodeNotFound, "%s is not an admin of %q", m.Admin, m.Org)
		}
		if len(o.Admins) == 1 {
			return record.Errf(record.CodeConflict, "cannot remove the last admin of %q; add another first", m.Org)
		}
		o.Admins = slices.DeleteFunc(o.Admins, func(a string) bool { return a == m.Admin })
		x.buf.del(adminKey(m.Admin, m.Org))
	}
	x.buf.set(record.OrgKey(m.Org), o)
	x.emit("org", "id", m.Org, "action", m.Kind(), "admin", m.Admin)
	return nil
}

func (x *txExec) deviceRegister(m *record.DeviceRegister) error {
	o, err := x.adminOrg(m.Org)
	if err != nil {
		return err
	}
	if _, err := x.st.Device(m.Device); err == nil {
		return record.Errf(record.CodeConflict, "device %s is already registered", m.Device)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if slices.Contains(o.Admins, m.Device) {
		return record.Errf(record.CodeInvalid, "%s is an admin key of %q; a device needs its own key", m.Device, m.Org)
	}
	pub, err := identity.ParseDID(m.Device)
	if err != nil {
		return record.Errf(record.CodeInvalid, "device: %v", err)
	}
	if err := pub.Verify(record.PossessionMessage(x.chainID, m.Org, m.Device), m.Proof); err != nil {
		return record.Errf(record.CodeInvalid, "proof of possession of the device key does not verify: %v", err)
	}
	if m.AttestedBy != "" {
		gw, err := x.st.Device(m.AttestedBy)
		if err != nil {
			return notFound(err)
		}
		if gw.Class != record.ClassGateway || gw.Org != m.Org {
			return record.Errf(record.CodeInvalid, "attested_by %s is not a gateway of %q", m.AttestedBy, m.Org)
		}
	}
	d := &record.Device{
		ID: m.Device, Org: m.Org, Key: m.Device, Status: record.StatusActive,
		Class: m.Class, Firmware: m.Firmware, Labels: m.Labels, AttestedBy: m.AttestedBy,
		Registered: x.height, Updated: x.height,
	}
	o.Devices++
	x.buf.set(record.OrgKey(o.ID), o)
	x.record(d, "registered in "+m.Org)
	return nil
}

// record appends a history event for d and writes it.
func (x *txExec) record(d *record.Device, note string) {
	recordDevice(x.buf, d, record.Event{Height: x.height, Tx: x.tx.Hash[:], Kind: x.tx.Kind, Signer: x.tx.Signer, Note: note})
	x.emit("device", "id", d.ID, "org", d.Org, "action", x.tx.Kind, "status", string(d.Status))
}

// manageable loads a device that the signer may manage (mayManage).
func (x *txExec) manageable(id string) (*record.Device, error) {
	d, err := x.st.Device(id)
	if err != nil {
		return nil, notFound(err)
	}
	if err := mayManage(x.st, x.actor(), d, x.height); err != nil {
		return nil, err
	}
	return d, nil
}

func (x *txExec) deviceRotate(m *record.DeviceRotate) error {
	var d *record.Device
	var err error
	if x.device != nil && x.device.ID == m.Device {
		d = x.device // a device rotates its own key; signerKey checked it is active
	} else if d, err = x.manageable(m.Device); err != nil {
		return err
	}
	if d.Status == record.StatusRevoked {
		return record.Errf(record.CodeConflict, "device %s is revoked; its key cannot change", d.ID)
	}
	if m.NewKey == d.Key {
		return record.Errf(record.CodeConflict, "the new key is the device's current key")
	}
	if other, err := x.st.Device(m.NewKey); err == nil && other.ID != d.ID {
		return record.Errf(record.CodeConflict, "key %s is another device's id", m.NewKey)
	}
	pub, err := identity.ParseDID(m.NewKey)
	if err != nil {
		return record.Errf(record.CodeInvalid, "new key: %v", err)
	}
	if err := pub.Verify(record.RotationMessage(x.chainID, d.ID, m.NewKey), m.Proof); err != nil {
		return record.Errf(record.CodeInvalid, "proof of possession of the new key does not verify: %v", err)
	}
	d.Key = m.NewKey
	x.record(d, "key rotated to "+m.NewKey)
	return nil
}

func (x *txExec) deviceStatus(m *record.DeviceStatus) error {
	defer x.flushEvents()
	return setDeviceStatus(x.ops(), x.actor(), m.Device, m.To, m.Reason)
}

func (x *txExec) deviceUpdate(m *record.DeviceUpdate) error {
	d, err := x.manageable(m.Device)
	if err != nil {
		return err
	}
	if d.Status == record.StatusRevoked {
		return record.Errf(record.CodeConflict, "device %s is revoked", d.ID)
	}
	note := ""
	if m.Class != "" {
		d.Class = m.Class
		note += " class=" + m.Class
	}
	if m.Firmware != "" {
		d.Firmware = m.Firmware
		note += " firmware=" + m.Firmware
	}
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		if d.Labels == nil {
			d.Labels = map[string]string{}
		}
		d.Labels[k] = m.Labels[k]
		note += " " + k + "=" + m.Labels[k]
	}
	for _, k := range m.RemoveLabels {
		delete(d.Labels, k)
		note += " -" + k
	}
	if len(d.Labels) > 32 {
		return record.Errf(record.CodeInvalid, "device would have %d labels; at most 32", len(d.Labels))
	}
	if len(note) > 0 {
		note = note[1:]
	}
	x.record(d, note)
	return nil
}

func (x *txExec) grantAdd(m *record.GrantAdd) error {
	defer x.flushEvents()
	_, err := addGrant(x.ops(), x.actor(), record.Grant{
		Grantor: m.Grantor, Subject: m.Subject, Action: m.Action, Resource: m.Resource, Expiry: m.Expiry, Quota: m.Quota,
	})
	return err
}

func (x *txExec) grantRevoke(m *record.GrantRevoke) error {
	defer x.flushEvents()
	return revokeGrant(x.ops(), x.actor(), m.ID)
}

func (x *txExec) validatorUpdate(m *record.ValidatorUpdate) error {
	last, err := x.st.u64([]byte(record.KeyValSeq))
	if err != nil {
		return err
	}
	if m.Seq != last+1 {
		return record.Errf(record.CodeBadNonce, "validator update sequence %d; the next is %d", m.Seq, last+1)
	}
	vals, err := x.st.Validators()
	if err != nil {
		return err
	}
	power := map[string]int64{}
	var total int64
	for _, v := range vals {
		power[string(v.PubKey)] = v.Power
		total += v.Power
	}
	if err := x.checkApprovals(record.ValidatorUpdateMessage(x.chainID, m.Seq, m.PubKey, m.Power), m.Approvals); err != nil {
		return err
	}
	old, isVal := power[string(m.PubKey)]
	newTotal := total - old + m.Power
	if m.Power == 0 && !isVal {
		return record.Errf(record.CodeNotFound, "%X is not a validator; nothing to remove", m.PubKey)
	}
	if newTotal <= 0 || (m.Power == 0 && len(vals) == 1) {
		return record.Errf(record.CodeConflict, "the update would leave no validators")
	}
	if _, err := identity.NewPublicKey(identity.Ed25519, m.PubKey); err != nil {
		return record.Errf(record.CodeInvalid, "validator key: %v", err)
	}
	x.buf.set([]byte(record.KeyValSeq), binary.BigEndian.AppendUint64(nil, m.Seq))
	if m.Power == 0 {
		x.buf.del(validatorKey(m.PubKey))
	} else {
		x.buf.set(validatorKey(m.PubKey), &record.Validator{PubKey: m.PubKey, Power: m.Power})
	}
	if err := appendValidatorEvent(x.st, x.buf, m.PubKey, record.ValidatorEvent{Height: x.height, Kind: record.ValEventUpdate, Power: m.Power, Tx: x.tx.Hash[:]}); err != nil {
		return err
	}
	x.valUpdates = append(x.valUpdates, abci.ValidatorUpdate{
		PubKey: cmtcrypto.PublicKey{Sum: &cmtcrypto.PublicKey_Ed25519{Ed25519: m.PubKey}},
		Power:  m.Power,
	})
	x.emit("validator", "pub_key", fmt.Sprintf("%X", m.PubKey), "power", strconv.FormatInt(m.Power, 10))
	return nil
}

// dataAnchor records a gateway's log size and root, refusing any anchor that
// is not an append-only extension of the previous one.
func (x *txExec) dataAnchor(m *record.DataAnchor) error {
	if x.device == nil || x.device.Class != record.ClassGateway {
		return record.Errf(record.CodeUnauthorized, "only a device of class %q anchors a data log", record.ClassGateway)
	}
	gw := x.device.ID
	prev, err := x.st.Anchor(gw)
	switch {
	case errors.Is(err, ErrNotFound):
		prev = &record.Anchor{Gateway: gw}
	case err != nil:
		return err
	}
	if m.Size <= prev.Size {
		return record.Errf(record.CodeConflict, "log size %d is not above the last anchored size %d", m.Size, prev.Size)
	}
	if prev.Size > 0 {
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, prev.Size, m.Size, m.Consistency, prev.Root, m.Root); err != nil {
			return record.Errf(record.CodeInvalid, "the log of size %d is not an extension of the anchored log of size %d: %v", m.Size, prev.Size, err)
		}
	} else if len(m.Consistency) != 0 {
		return record.Errf(record.CodeInvalid, "the first anchor takes no consistency proof")
	}
	a := &record.Anchor{Gateway: gw, Size: m.Size, Root: m.Root, Height: x.height, Count: prev.Count + 1}
	x.buf.set(record.AnchorKey(gw), a)
	x.buf.set(record.AnchorAtKey(gw, m.Size), a)
	x.emit("anchor", "gateway", gw, "size", strconv.FormatUint(m.Size, 10), "root", fmt.Sprintf("%X", m.Root))
	return nil
}
