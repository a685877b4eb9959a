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
		to := record.StatusSuspended
		if a.Kind == lang.EffectResume {
			to = record.StatusActive
		}
		return setDeviceStatus(ops, agreementActor(ag), a.Device, to, a.Reason)
	case lang.EffectGrant:
		g, who := a.Grant, agreementActor(ag)
		if g.Replaces != 0 {
			if err := revokeGrant(ops, who, g.Replaces); err != nil {
				return err
			}
		}
		id, err := addGrant(ops, who, record.Grant{
			Grantor: g.Grantor, Subject: g.Subject, Action: g.Action, Resource: g.Resource, Expiry: g.Expiry,
		})
		if err != nil {
			return err
		}
		inst.SetGrant(g.Name, id)
		return nil
	case lang.EffectRevoke:
		return revokeGrant(ops, agreementActor(ag), a.RevokeID)
	case lang.EffectEmit:
		ops.emit("agreement_event", "agreement", strconv.FormatUint(ag.ID, 10), "event", a.Event, "value", strconv.FormatInt(a.Value, 10))
		return nil
	case lang.EffectFinish:
		return nil
	}
	return record.Errf(record.CodeInvalid, "unknown action %q", a.Kind)
}
