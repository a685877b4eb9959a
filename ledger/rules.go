// The rule book: who may do what, and the state changes of authorization
// (grants, device status), in one place. Transactions (exec.go, credits.go)
// and agreement effects (agreement_runner.go) both call these functions and
// neither re-implements them: two copies of one rule in a state machine
// drift, and a drift is a consensus bug.

package ledger

import (
	"slices"
	"strconv"

	"github.com/thingnet/thingnet/record"
)

// actor is who asks the ledger for a change: the signer of a transaction,
// or an agreement applying an effect of one of its transitions.
type actor struct {
	signer    string   // a tx's signer: a person's key or a device id
	device    bool     // the tx's signer is a registered device
	agreement string   // an agreement's principal, "agreement:<id>" (signer is then empty)
	parties   []string // the agreement's parties' principals
}

// actor is the signer of the tx being executed, as the rule book sees it.
func (x *txExec) actor() actor { return actor{signer: x.tx.Signer, device: x.device != nil} }

// agreementActor is agreement ag applying an effect.
func agreementActor(ag *record.Agreement) actor {
	a := actor{agreement: "agreement:" + strconv.FormatUint(ag.ID, 10)}
	for _, p := range ag.Parties {
		a.parties = append(a.parties, p.Principal)
	}
	return a
}

func (a actor) isAgreement() bool { return a.agreement != "" }

// id is who the ledger records as the author of a change (a grant's
// Signer, a history event's Signer).
func (a actor) id() string {
	if a.isAgreement() {
		return a.agreement
	}
	return a.signer
}

// subjects lists the grant subjects a holds grants as: an agreement as
// itself, a device as itself, a person's key as itself and as every
// organisation it administers.
func (a actor) subjects(st *State) ([]string, error) {
	if a.isAgreement() {
		return []string{a.agreement}, nil
	}
	subjects := []string{"device:" + a.signer}
	if !a.device {
		orgs, err := st.AdminOrgs(a.signer)
		if err != nil {
			return nil, err
		}
		for _, o := range orgs {
			subjects = append(subjects, "org:"+o)
		}
	}
	return subjects, nil
}

// holdsGrant reports whether one of subjects holds a grant in force at
// height h for action on one of resources.
func holdsGrant(st *State, subjects []string, action string, resources []string, h int64) (bool, error) {
	for _, s := range subjects {
		ok, err := st.HasGrant(s, action, resources, h)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// adminOf loads organisation id if signer is one of its admins.
func adminOf(st *State, signer, id string) (*record.Org, error) {
	o, err := st.Org(id)
	if err != nil {
		return nil, notFound(err)
	}
	if !o.IsAdmin(signer) {
		return nil, record.Errf(record.CodeUnauthorized, "%s is not an admin of organisation %q", signer, id)
	}
	return o, nil
}

// speaksFor reports whether signer speaks for principal p: the device
// itself; for an organisation, one of its admins. With devOrgs, an admin
// of a device's organisation speaks for the device too (accepting an
// agreement).
func speaksFor(st *State, signer string, p record.Principal, devOrgs bool) (bool, error) {
	switch p.Type {
	case "device":
		if signer == p.ID {
			return true, nil
		}
		if !devOrgs {
			return false, nil
		}
		d, err := st.Device(p.ID)
		if err != nil {
			return false, notFound(err)
		}
		p = record.Principal{Type: "org", ID: d.Org}
		fallthrough
	case "org":
		o, err := st.Org(p.ID)
		if err != nil {
			return false, notFound(err)
		}
		return o.IsAdmin(signer), nil
	}
	return false, nil
}

// speaksForParty is speaksFor on an agreement party's principal.
func speaksForParty(st *State, signer, principal string, devOrgs bool) (bool, error) {
	p, err := record.ParsePrincipal(principal)
	if err != nil {
		return false, err
	}
	return speaksFor(st, signer, p, devOrgs)
}

// mayActFor checks that a acts for principal p (grants as it, revokes its
// grants, pays from its account): a tx's signer that speaks for p; an
// agreement for its parties, who accepted its text.
func mayActFor(st *State, a actor, p record.Principal) error {
	if a.isAgreement() {
		if slices.Contains(a.parties, p.String()) {
			return nil
		}
		return record.Errf(record.CodeUnauthorized, "%s acts only for its parties, and %s is not one", a.agreement, p)
	}
	ok, err := speaksFor(st, a.signer, p, false)
	if err != nil || ok {
		return err
	}
	if p.Type == "org" {
		return record.Errf(record.CodeUnauthorized, "%s is not an admin of organisation %q", a.signer, p.ID)
	}
	return record.Errf(record.CodeUnauthorized, "only device %s itself may grant as %s", p.ID, p)
}

// mayManage checks that a may manage device d (change its status, key or
// metadata, set its desired configuration): an admin of its organisation,
// or a holder of a "manage" grant on the device or its organisation (for
// another organisation's admin: through a grant to that organisation).
func mayManage(st *State, a actor, d *record.Device, h int64) error {
	_, err := manageRight(st, a, d.Org, "device "+d.ID+" of "+strconv.Quote(d.Org), []string{"device:" + d.ID, "org:" + d.Org}, h)
	return err
}

// manageRight is the right by which a manages what org owns (resources,
// described by what): nil for an admin of org, else the "manage" grant in
// force at h on one of resources that a holds. Desired configurations
// record it, so that a device can check the right still holds.
func manageRight(st *State, a actor, org, what string, resources []string, h int64) (*record.Grant, error) {
	if !a.isAgreement() {
		o, err := st.Org(org)
		if err != nil {
			return nil, notFound(err)
		}
		if o.IsAdmin(a.signer) {
			return nil, nil
		}
	}
	subjects, err := a.subjects(st)
	if err != nil {
		return nil, err
	}
	for _, s := range subjects {
		g, err := st.grantFor(s, record.ActionManage, resources, h)
		if err != nil || g != nil {
			return g, err
		}
	}
	if a.isAgreement() {
		return nil, record.Errf(record.CodeUnauthorized, "%s has no %q grant on %s", a.agreement, record.ActionManage, what)
	}
	return nil, record.Errf(record.CodeUnauthorized, "%s may not manage %s (not an admin and no %q grant)", a.signer, what, record.ActionManage)
}

// owns reports whether grantor owns r: its own resources, and for an
// organisation its devices' resources.
func owns(st *State, grantor record.Principal, r record.Resource) (bool, error) {
	if r.Owner == grantor {
		return true, nil
	}
	if grantor.Type == "org" && r.Owner.Type == "device" {
		d, err := st.Device(r.Owner.ID)
		if err != nil {
			return false, notFound(err)
		}
		return d.Org == grantor.ID, nil
	}
	return false, nil
}

// principalExists checks that p is a known organisation, device or agreement.
func principalExists(st *State, p record.Principal) error {
	var err error
	switch p.Type {
	case "org":
		_, err = st.Org(p.ID)
	case "agreement":
		var id uint64
		if id, err = strconv.ParseUint(p.ID, 10, 64); err == nil {
			_, err = st.Agreement(id)
		}
	default:
		_, err = st.Device(p.ID)
	}
	return notFound(err)
}

// checkGrantExpiry: a grant's expiry is the last height it is in force,
// 0 for none; a grant is not added already expired.
func checkGrantExpiry(expiry, height int64) error {
	switch {
	case expiry < 0:
		return record.Errf(record.CodeInvalid, "grant expiry %d is negative; 0 means none", expiry)
	case expiry != 0 && expiry < height:
		return record.Errf(record.CodeInvalid, "grant expiry %d is before the current height %d", expiry, height)
	}
	return nil
}

// addGrant adds grant g (its grantor, subject, action, resource, expiry
// and quota) on behalf of a: a must act for the grantor (mayActFor), the
// grantor must own the resource (owns), the subject must exist and the
// expiry must not have passed (checkGrantExpiry). It returns the new id.
func addGrant(ops *ledgerOps, a actor, g record.Grant) (uint64, error) {
	grantor, err := record.ParsePrincipal(g.Grantor)
	if err != nil {
		return 0, record.Errf(record.CodeInvalid, "grantor: %v", err)
	}
	subj, err := record.ParsePrincipal(g.Subject)
	if err != nil {
		return 0, record.Errf(record.CodeInvalid, "subject: %v", err)
	}
	if err := record.ValidateAction(g.Action); err != nil {
		return 0, record.Errf(record.CodeInvalid, "%v", err)
	}
	res, err := record.ParseResource(g.Resource)
	if err != nil {
		return 0, record.Errf(record.CodeInvalid, "%v", err)
	}
	if err := mayActFor(ops.st, a, grantor); err != nil {
		return 0, err
	}
	ok, err := owns(ops.st, grantor, res)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, record.Errf(record.CodeUnauthorized, "%s does not own %s and cannot grant on it", g.Grantor, g.Resource)
	}
	if err := principalExists(ops.st, subj); err != nil {
		return 0, err
	}
	if err := checkGrantExpiry(g.Expiry, ops.height); err != nil {
		return 0, err
	}
	id, err := ops.nextSeq(record.KeyGrantSeq)
	if err != nil {
		return 0, err
	}
	g.ID, g.Created, g.Signer, g.Revoked = id, ops.height, a.id(), 0
	ops.buf.set(record.GrantKey(id), &g)
	ops.buf.set(grantIdxKey(g.Subject, g.Action, g.Resource, id), marker)
	ops.emit("grant", "id", strconv.FormatUint(id, 10), "action", "add", "subject", g.Subject, "resource", g.Resource, "grant_action", g.Action)
	return id, nil
}

// mayRevoke checks that a may revoke grant g: a tx's signer that acts for
// the grantor; an agreement, only a grant it added.
func mayRevoke(st *State, a actor, g *record.Grant) error {
	if a.isAgreement() {
		if g.Signer != a.agreement {
			return record.Errf(record.CodeUnauthorized, "grant %d was not added by %s", g.ID, a.agreement)
		}
		return nil
	}
	grantor, err := record.ParsePrincipal(g.Grantor)
	if err != nil {
		return err
	}
	return mayActFor(st, a, grantor)
}

// revokeGrant revokes grant id on behalf of a (mayRevoke). A revoked
// grant stays revoked: a tx revoking it again is refused, so its signer
// learns it did nothing; an agreement's revoke finds its outcome already
// holds and succeeds.
func revokeGrant(ops *ledgerOps, a actor, id uint64) error {
	g, err := ops.st.Grant(id)
	if err != nil {
		return notFound(err)
	}
	if err := mayRevoke(ops.st, a, g); err != nil {
		return err
	}
	if g.Revoked != 0 {
		if a.isAgreement() {
			return nil
		}
		return record.Errf(record.CodeConflict, "grant %d was revoked at height %d", g.ID, g.Revoked)
	}
	g.Revoked = ops.height
	ops.buf.set(record.GrantKey(g.ID), g)
	ops.buf.del(grantIdxKey(g.Subject, g.Action, g.Resource, g.ID))
	ops.emit("grant", "id", strconv.FormatUint(g.ID, 10), "action", "revoke", "subject", g.Subject, "resource", g.Resource)
	return nil
}

// setDeviceStatus sets device id's status to `to` on behalf of a, who
// must manage it (mayManage), and records the change in its history.
// Revocation is final. A tx that would change nothing is refused, so its
// signer learns it did nothing; an agreement's suspend or resume finds its
// outcome already holds and succeeds.
func setDeviceStatus(ops *ledgerOps, a actor, id string, to record.Status, reason string) error {
	d, err := ops.st.Device(id)
	if err != nil {
		return notFound(err)
	}
	if err := mayManage(ops.st, a, d, ops.height); err != nil {
		return err
	}
	switch {
	case d.Status == record.StatusRevoked:
		return record.Errf(record.CodeConflict, "device %s is revoked; revocation is final", d.ID)
	case d.Status == to && a.isAgreement():
		return nil
	case d.Status == to:
		return record.Errf(record.CodeConflict, "device %s is already %s", d.ID, d.Status)
	}
	d.Status = to
	note := string(to)
	if reason != "" {
		note += ": " + reason
	}
	kind := (&record.DeviceStatus{To: to}).Kind()
	recordDevice(ops.buf, d, record.Event{Height: ops.height, Tx: ops.tx, Kind: kind, Signer: a.id(), Note: note})
	ops.emit("device", "id", d.ID, "org", d.Org, "action", kind, "status", string(d.Status))
	return nil
}

// ReadAccess is the read rule's answer for one caller and one device.
type ReadAccess struct {
	Allowed bool
	// As says why: "device" (the device itself), "admin" (of its
	// organisation), "grant" (a read grant), "public" (its organisation
	// marked it public); empty when refused.
	As string
	// Grant is the read grant that allows it, when As is "grant": its
	// quota (reads per day) is counted where the values are served.
	Grant *record.Grant
}

// MayRead is the read rule (docs/privacy.md): who may read device d's
// reading values, payloads and stream. caller is a device id or a
// person's did:key, authenticated by the caller of MayRead, or "" for an
// anonymous caller. Allowed: the device itself; an admin of its
// organisation; the holder of a read grant in force at the next height,
// for itself or for an organisation it is a device or an admin of, on
// "device:<id>/readings", "device:<id>" or "org:<org>"; anyone, where the
// organisation's policy marks the device or its class public. Everything
// else, including that a log entry exists, its hash and its proofs, is
// public and needs no rule.
func (s *State) MayRead(caller string, d *record.Device) (ReadAccess, error) {
	if caller != "" && caller == d.ID {
		return ReadAccess{Allowed: true, As: "device"}, nil
	}
	if caller != "" {
		subjects := []string{"device:" + caller}
		if cd, err := s.Device(caller); err == nil {
			subjects = append(subjects, "org:"+cd.Org)
		} else {
			orgs, err := s.AdminOrgs(caller)
			if err != nil {
				return ReadAccess{}, err
			}
			for _, o := range orgs {
				if o == d.Org {
					return ReadAccess{Allowed: true, As: "admin"}, nil
				}
				subjects = append(subjects, "org:"+o)
			}
		}
		resources := []string{"device:" + d.ID + "/readings", "device:" + d.ID, "org:" + d.Org}
		for _, sub := range subjects {
			g, err := s.grantFor(sub, record.ActionRead, resources, s.Height+1)
			if err != nil {
				return ReadAccess{}, err
			}
			if g != nil {
				return ReadAccess{Allowed: true, As: "grant", Grant: g}, nil
			}
		}
	}
	p, err := s.Policy(d.Org)
	if err != nil {
		return ReadAccess{}, err
	}
	if p.IsPublic(d.ID, d.Class) {
		return ReadAccess{Allowed: true, As: "public"}, nil
	}
	return ReadAccess{}, nil
}
