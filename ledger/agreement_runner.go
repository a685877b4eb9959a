// The agreement runner: it fires transitions over staged state, applies
// their effects through the rule book (rules.go) and delivers their events.

package ledger

import (
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/thingnet/thingnet/agreements"
	"github.com/thingnet/thingnet/agreements/lang"
	"github.com/thingnet/thingnet/record"
)

// Limits of agreement execution per tx.
const (
	// MaxFiresPerTrigger bounds the transitions one trigger may cause
	// through events (the trigger's own included).
	MaxFiresPerTrigger = 16
	// MaxEventDepth bounds chains of events (A's event fires B, whose event fires C...).
	MaxEventDepth = 4
)

// Trace is one transition executed, for dry runs and logs.
type Trace struct {
	Agreement  uint64         `json:"agreement"`
	Transition string         `json:"transition"`
	Trigger    string         `json:"trigger"`
	Actions    []lang.Action  `json:"actions"`
	Cost       uint64         `json:"cel_cost"`
	State      map[string]any `json:"state"`
	Error      string         `json:"error,omitempty"`
}

// agRunner runs agreement transitions over staged state.
type agRunner struct {
	ops    *ledgerOps
	progs  *progCache
	fires  int
	trace  []Trace
	signer string
}

// fired is an event an executed transition emitted, to deliver to subscribers.
type fired struct {
	ev    agreements.Event
	depth int
}

// trigger runs transition name of agreement id on input and then, within
// the limits, the transitions its events trigger. The first transition's
// failure is returned; later ones are recorded in their agreements' history.
func (r *agRunner) trigger(id uint64, name, kind string, in *agreements.Input) error {
	evs, err := r.fire(id, name, kind, in)
	if err != nil {
		return err
	}
	for i := range evs {
		evs[i].depth = 1
	}
	return r.cascade(evs)
}

func (r *agRunner) cascade(queue []fired) error {
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		if f.depth > MaxEventDepth {
			continue
		}
		p := subscriptionPrefix(f.ev.Agreement, f.ev.Name)
		type sub struct {
			id  uint64
			idx int
		}
		var subs []sub
		err := r.ops.st.scan(p, prefixEnd(p), func(k, _ []byte) (bool, error) {
			rest := k[len(p):]
			subs = append(subs, sub{binary.BigEndian.Uint64(rest), int(binary.BigEndian.Uint16(rest[8:]))})
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, s := range subs {
			if r.fires >= MaxFiresPerTrigger {
				return nil
			}
			ag, err := r.ops.st.Agreement(s.id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err // storage: halt rather than diverge
			}
			if ag.Status != record.AgreementActive {
				continue
			}
			prog, err := r.progs.get(ag)
			if err != nil {
				continue
			}
			ets := prog.EventTriggers()
			if s.idx >= len(ets) {
				continue
			}
			ev := f.ev
			evs, err := r.fire(s.id, ets[s.idx].Transition, "event", &agreements.Input{Agreement: s.id, Height: r.ops.height, Event: &ev})
			if err != nil {
				if err := r.recordFailure(s.id, ets[s.idx].Transition, "event", err); err != nil {
					return err
				}
				continue
			}
			for _, e := range evs {
				e.depth = f.depth + 1
				queue = append(queue, e)
			}
		}
	}
	return nil
}

// storageError reports errors that are not a rejection (*Error): reading
// or writing state failed, and the node must halt rather than diverge.
func storageError(err error) bool {
	var e *record.Error
	return err != nil && !errors.As(err, &e)
}

func (r *agRunner) recordFailure(id uint64, name, kind string, cause error) error {
	if storageError(cause) {
		return cause
	}
	ag, err := r.ops.st.Agreement(id)
	if err != nil {
		return err
	}
	ag.History++
	ag.Updated = r.ops.height
	r.ops.buf.set(record.AgreementEventKey(id, ag.History), &record.AgreementEvent{Seq: ag.History, Height: r.ops.height, Tx: r.ops.tx, Signer: r.signer, Trigger: kind, Transition: name, Error: logOf(cause)})
	r.ops.buf.set(record.AgreementKey(id), ag)
	r.trace = append(r.trace, Trace{Agreement: id, Transition: name, Trigger: kind, Error: logOf(cause)})
	return nil
}

// fire runs one transition in its own staged writes: all its effects
// apply, or none. It returns the events the transition emitted.
func (r *agRunner) fire(id uint64, name, kind string, in *agreements.Input) ([]fired, error) {
	r.fires++
	parent := r.ops
	child := newBuffer(parent.buf)
	var evs []eventSink
	ops := &ledgerOps{st: &State{r: child, Height: parent.st.Height}, buf: child, height: parent.height, tx: parent.tx, events: &evs}
	ag, err := ops.st.Agreement(id)
	if err != nil {
		return nil, notFound(err)
	}
	if ag.Status != record.AgreementActive {
		return nil, record.Errf(record.CodeConflict, "agreement %d is %s", id, ag.Status)
	}
	prog, err := r.progs.get(ag)
	if err != nil {
		return nil, record.Errf(record.CodeInvalid, "agreement %d does not compile: %v", id, err)
	}
	res, err := prog.Fire(ag.State, name, in)
	if err != nil {
		code := record.CodeInvalid
		switch {
		case errors.Is(err, agreements.ErrNotAllowed):
			code = record.CodeUnauthorized
		case errors.Is(err, lang.ErrGuard), errors.Is(err, agreements.ErrFinished):
			code = record.CodeConflict
		}
		return nil, record.Errf(code, "agreement %d %s: %v", id, name, err)
	}
	if res == nil { // a height or event transition whose guard is false
		return nil, nil
	}
	self := "agreement:" + strconv.FormatUint(id, 10)
	var out []fired
	for _, a := range res.Actions {
		if err := r.apply(ops, ag, res.Instance, self, name, a); err != nil {
			if storageError(err) {
				return nil, err
			}
			return nil, record.Errf(record.CodeOf(err), "agreement %d %s: %s: %s", id, name, a.Kind, logOf(err))
		}
		if a.Kind == lang.EffectEmit {
			out = append(out, fired{ev: agreements.Event{Agreement: id, Name: a.Event, Value: a.Value}})
		}
	}
	if err := reschedule(ops, prog, id, ag.State, res.Instance); err != nil {
		return nil, err
	}
	ag.State = res.Instance
	if res.Instance.Finished {
		ag.Status = record.AgreementFinished
	}
	ag.History++
	ag.Updated = ops.height
	ops.buf.set(record.AgreementEventKey(id, ag.History), &record.AgreementEvent{
		Seq: ag.History, Height: ops.height, Tx: ops.tx, Signer: r.signer, Trigger: kind, Transition: name, Actions: res.Actions, Cost: res.Cost,
	})
	ops.buf.set(record.AgreementKey(id), ag)
	ops.emit("agreement", "id", strconv.FormatUint(id, 10), "transition", name, "trigger", kind, "status", ag.Status)
	if err := child.flush(); err != nil {
		return nil, err
	}
	*parent.events = append(*parent.events, evs...)
	r.trace = append(r.trace, Trace{Agreement: id, Transition: name, Trigger: kind, Actions: res.Actions, Cost: res.Cost, State: prog.StateMap(res.Instance)})
	return out, nil
}

// apply applies one action of agreement ag.
func (r *agRunner) apply(ops *ledgerOps, ag *record.Agreement, inst *lang.Instance, self, transition string, a lang.Action) error {
	switch a.Kind {
	case lang.EffectTransfer:
		return ops.move("payment", a.From, a.To, a.Amount, ag.ID, transition)
	case lang.EffectEscrow:
		return ops.move("escrow", a.From, self, a.Amount, ag.ID, transition)
	case lang.EffectRelease:
		return ops.move("release", self, a.To, a.Amount, ag.ID, transition)
	case lang.EffectCommand:
		if _, err := ops.st.Device(a.Device); err != nil {
			return notFound(err)
		}
		id, err := ops.nextSeq(record.KeyCommandSeq)
		if err != nil {
			return err
		}
		ops.buf.set(record.CommandKey(a.Device, id), &record.Command{ID: id, Device: a.Device, Agreement: ag.ID, Transition: transition, Payload: a.Payload, Height: ops.height, Tx: ops.tx})
		ops.emit("command", "id", strconv.FormatUint(id, 10), "device", a.Device, "agreement", strconv.FormatUint(ag.ID, 10))
		return nil
	case lang.EffectSuspend, lang.EffectResume:
		return r.setStatus(ops, self, a)
	case lang.EffectGrant:
		g := a.Grant
		if g.Replaces != 0 {
			if err := revokeAgreementGrant(ops, self, g.Replaces); err != nil {
				return err
			}
		}
		id, err := addAgreementGrant(ops, self, g)
		if err != nil {
			return err
		}
		inst.SetGrant(g.Name, id)
		return nil
	case lang.EffectRevoke:
		return revokeAgreementGrant(ops, self, a.RevokeID)
	case lang.EffectEmit:
		ops.emit("agreement_event", "agreement", strconv.FormatUint(ag.ID, 10), "event", a.Event, "value", strconv.FormatInt(a.Value, 10))
		return nil
	case lang.EffectFinish:
		return nil
	}
	return record.Errf(record.CodeInvalid, "unknown action %q", a.Kind)
}

// setStatus suspends or resumes a device, which the agreement may do only
// with a "manage" grant on the device or its organisation.
func (r *agRunner) setStatus(ops *ledgerOps, self string, a lang.Action) error {
	d, err := ops.st.Device(a.Device)
	if err != nil {
		return notFound(err)
	}
	ok, err := ops.st.HasGrant(self, record.ActionManage, []string{"device:" + d.ID, "org:" + d.Org}, ops.height)
	if err != nil {
		return err
	}
	if !ok {
		return record.Errf(record.CodeUnauthorized, "%s has no %q grant on device %s or organisation %q", self, record.ActionManage, d.ID, d.Org)
	}
	to := record.StatusSuspended
	if a.Kind == lang.EffectResume {
		to = record.StatusActive
	}
	if d.Status == record.StatusRevoked {
		return record.Errf(record.CodeConflict, "device %s is revoked", d.ID)
	}
	if d.Status == to {
		return nil
	}
	d.Status = to
	note := string(to)
	if a.Reason != "" {
		note += ": " + a.Reason
	}
	kind := record.KindDeviceSuspend
	if to == record.StatusActive {
		kind = record.KindDeviceResume
	}
	recordDevice(ops.buf, d, record.Event{Height: ops.height, Tx: ops.tx, Kind: kind, Signer: self, Note: note})
	ops.emit("device", "id", d.ID, "org", d.Org, "action", kind, "status", string(d.Status))
	return nil
}

func addAgreementGrant(ops *ledgerOps, self string, g *lang.GrantSpec) (uint64, error) {
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
	ok, err := ownsResource(ops.st, grantor, res)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, record.Errf(record.CodeUnauthorized, "%s does not own %s and cannot grant on it", g.Grantor, g.Resource)
	}
	if err := principalExists(ops.st, subj); err != nil {
		return 0, err
	}
	id, err := ops.nextSeq(record.KeyGrantSeq)
	if err != nil {
		return 0, err
	}
	gr := &record.Grant{ID: id, Grantor: g.Grantor, Subject: g.Subject, Action: g.Action, Resource: g.Resource, Expiry: g.Expiry, Created: ops.height, Signer: self}
	ops.buf.set(record.GrantKey(id), gr)
	ops.buf.set(grantIdxKey(gr.Subject, gr.Action, gr.Resource, id), marker)
	ops.emit("grant", "id", strconv.FormatUint(id, 10), "action", "add", "subject", gr.Subject, "resource", gr.Resource, "grant_action", gr.Action)
	return id, nil
}

// revokeAgreementGrant revokes a grant the agreement added, if still in force.
func revokeAgreementGrant(ops *ledgerOps, self string, id uint64) error {
	g, err := ops.st.Grant(id)
	if err != nil {
		return notFound(err)
	}
	if g.Signer != self {
		return record.Errf(record.CodeUnauthorized, "grant %d was not added by %s", id, self)
	}
	if g.Revoked != 0 {
		return nil
	}
	g.Revoked = ops.height
	ops.buf.set(record.GrantKey(id), g)
	ops.buf.del(grantIdxKey(g.Subject, g.Action, g.Resource, id))
	ops.emit("grant", "id", strconv.FormatUint(id, 10), "action", "revoke", "subject", g.Subject, "resource", g.Resource)
	return nil
}
