package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/thingnet/thingnet/agreements"
	"github.com/thingnet/thingnet/agreements/lang"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// Limits of agreement execution per tx and per block.
const (
	// MaxFiresPerTrigger bounds the transitions one trigger may cause
	// through events (the trigger's own included).
	MaxFiresPerTrigger = 16
	// MaxEventDepth bounds chains of events (A's event fires B, whose event fires C...).
	MaxEventDepth = 4
	// MaxScheduledPerBlock bounds height-triggered transitions per block;
	// the rest run in the next blocks, in the same order.
	MaxScheduledPerBlock = 256
)

func scheduleKey(height int64, id uint64, trigger int) []byte {
	k := binary.BigEndian.AppendUint64([]byte(record.PrefixSchedule), uint64(height))
	k = binary.BigEndian.AppendUint64(k, id)
	return binary.BigEndian.AppendUint16(k, uint16(trigger))
}
func subscriptionPrefix(source uint64, event string) []byte {
	return append(binary.BigEndian.AppendUint64([]byte(record.PrefixSubscription), source), event+"\x00"...)
}

// Agreement returns an agreement.
func (s *State) Agreement(id uint64) (*record.Agreement, error) {
	var a record.Agreement
	ok, err := s.get(record.AgreementKey(id), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("agreement %d: %w", id, ErrNotFound)
	}
	return &a, nil
}

// Agreements lists agreements with id above after, in id order.
func (s *State) Agreements(after uint64, limit int) ([]record.Agreement, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []record.Agreement
	err := s.scan(record.AgreementKey(after+1), prefixEnd([]byte(record.PrefixAgreement)), func(_, v []byte) (bool, error) {
		var a record.Agreement
		if err := record.Unmarshal(v, &a); err != nil {
			return false, err
		}
		out = append(out, a)
		return len(out) < limit, nil
	})
	return out, err
}

// AgreementHistory returns up to limit history entries of an agreement from seq from (1-based).
func (s *State) AgreementHistory(id, from uint64, limit int) ([]record.AgreementEvent, error) {
	if from == 0 {
		from = 1
	}
	if limit <= 0 {
		limit = 100
	}
	var out []record.AgreementEvent
	p := binary.BigEndian.AppendUint64([]byte(record.PrefixAgreementLog), id)
	err := s.scan(record.AgreementEventKey(id, from), prefixEnd(p), func(_, v []byte) (bool, error) {
		var e record.AgreementEvent
		if err := record.Unmarshal(v, &e); err != nil {
			return false, err
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}

// Commands returns a device's commands with id above after, oldest first.
func (s *State) Commands(device string, after uint64, limit int) ([]record.Command, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []record.Command
	err := s.scan(record.CommandKey(device, after+1), prefixEnd([]byte(record.PrefixCommand+device+"/")), func(_, v []byte) (bool, error) {
		var c record.Command
		if err := record.Unmarshal(v, &c); err != nil {
			return false, err
		}
		out = append(out, c)
		return len(out) < limit, nil
	})
	return out, err
}

// progCache keeps compiled agreements (compiling is pure, so a cache
// cannot make nodes diverge).
type progCache struct {
	mu    sync.Mutex
	m     map[string]*agreements.Program
	order []string
	max   int
}

func newProgCache(n int) *progCache { return &progCache{m: map[string]*agreements.Program{}, max: n} }

// Program compiles (or returns the cached) program of an agreement.
func (c *progCache) get(a *record.Agreement) (*agreements.Program, error) {
	var b strings.Builder
	b.Write(a.Hash)
	for _, p := range a.Parties {
		b.WriteString("\x00" + p.Name + "=" + p.Principal)
	}
	key := b.String()
	if c != nil {
		c.mu.Lock()
		p := c.m[key]
		c.mu.Unlock()
		if p != nil {
			return p, nil
		}
	}
	p, err := compileAgreement(a.Source, a.Parties)
	if err != nil {
		return nil, err
	}
	if c != nil {
		c.mu.Lock()
		if _, ok := c.m[key]; !ok {
			c.m[key] = p
			c.order = append(c.order, key)
			if len(c.order) > c.max {
				delete(c.m, c.order[0])
				c.order = c.order[1:]
			}
		}
		c.mu.Unlock()
	}
	return p, nil
}

func compileAgreement(src []byte, parties []record.AgreementParty) (*agreements.Program, error) {
	d, err := lang.Parse(src)
	if err != nil {
		return nil, err
	}
	bind := make(map[string]string, len(parties))
	for _, p := range parties {
		bind[p.Name] = p.Principal
	}
	return agreements.Compile(d, bind, lang.DefaultLimits())
}

// CompileAgreement compiles a deployed agreement (for readers: the API
// shows its state by variable name).
func CompileAgreement(a *record.Agreement) (*agreements.Program, error) {
	return compileAgreement(a.Source, a.Parties)
}

// Program returns a deployed agreement's compiled program from the
// application's cache (for readers: the API shows state by variable name).
func (a *App) Program(ag *record.Agreement) (*agreements.Program, error) {
	return a.progs.get(ag)
}

// Set and Remove let a buffer stage writes over another buffer (a
// transition's writes over its tx's), applied by flush.
func (b *buffer) Set(key, value []byte) (bool, error) {
	b.writes[string(key)] = value
	return false, nil
}

func (b *buffer) Remove(key []byte) ([]byte, bool, error) {
	b.writes[string(key)] = nil
	return nil, false, nil
}

// readOnly lets a buffer stage writes over a committed version that it
// never flushes (dry runs).
type readOnly struct{ reader }

func (readOnly) Set([]byte, []byte) (bool, error) {
	return false, errors.New("ledger: a dry run cannot write")
}
func (readOnly) Remove([]byte) ([]byte, bool, error) {
	return nil, false, errors.New("ledger: a dry run cannot write")
}

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

// reschedule moves the "at" height triggers whose variable changed.
func reschedule(ops *ledgerOps, prog *agreements.Program, id uint64, old, cur *lang.Instance) error {
	for i, ht := range prog.HeightTriggers() {
		if ht.At == "" {
			continue
		}
		ov, _ := prog.Var(old, ht.At)
		nv, _ := prog.Var(cur, ht.At)
		if ov.Int == nv.Int {
			continue
		}
		if ov.Int > ops.height {
			ops.buf.del(scheduleKey(ov.Int, id, i))
		}
		if nv.Int > ops.height {
			ops.buf.set(scheduleKey(nv.Int, id, i), marker)
		}
	}
	return nil
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

// ownsResource reports whether grantor owns r: its own resources, and for
// an organisation its devices' resources.
func ownsResource(st *State, grantor record.Principal, r record.Resource) (bool, error) {
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

// speaksFor reports whether signer speaks for a party principal: the
// device itself; for an organisation, one of its admins. With devOrgs, an
// admin of a device's organisation speaks for the device too (accepting).
func speaksFor(st *State, signer, principal string, devOrgs bool) (bool, error) {
	p, err := record.ParsePrincipal(principal)
	if err != nil {
		return false, err
	}
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

func (x *txExec) runner() *agRunner {
	return &agRunner{ops: x.ops(), progs: x.progs, signer: x.tx.Signer}
}

func (x *txExec) agreementDeploy(m *record.AgreementDeploy) error {
	d, err := lang.Parse(m.Source)
	if err != nil {
		return record.Errf(record.CodeInvalid, "agreement: %v", err)
	}
	ag := &record.Agreement{Name: d.Name, Source: m.Source, Deployer: x.tx.Signer, Deployed: x.height, Status: record.AgreementProposed, Updated: x.height}
	h := sha256.Sum256(m.Source)
	ag.Hash = h[:]
	prog, err := agreements.Compile(d, m.Parties, lang.DefaultLimits())
	if err != nil {
		return record.Errf(record.CodeInvalid, "agreement: %v", err)
	}
	for _, p := range prog.Parties {
		ag.Parties = append(ag.Parties, record.AgreementParty{Name: p.Name, Principal: p.Principal()})
		pr, _ := record.ParsePrincipal(p.Principal())
		if err := principalExists(x.st, pr); err != nil {
			return record.Errf(record.CodeNotFound, "party %s: %v", p.Name, logOf(err))
		}
	}
	for _, et := range prog.EventTriggers() {
		if et.Agreement != 0 {
			if _, err := x.st.Agreement(et.Agreement); err != nil {
				return record.Errf(record.CodeNotFound, "transition %s waits for an event of agreement %d, which does not exist", et.Transition, et.Agreement)
			}
		}
	}
	id, err := x.ops().nextSeq(record.KeyAgreementSeq)
	if err != nil {
		return err
	}
	ag.ID = id
	if ag.State, err = prog.Init(id, x.height); err != nil {
		return record.Errf(record.CodeInvalid, "agreement: initial state: %v", err)
	}
	accepted, err := x.accept(ag)
	if err != nil {
		return err
	}
	if !accepted {
		return record.Errf(record.CodeUnauthorized, "%s speaks for no party of the agreement (parties: %s); deploy with a party's key", x.tx.Signer, partyList(ag))
	}
	x.logAgreement(ag, "deploy")
	return x.activateIfReady(ag, prog)
}

func partyList(ag *record.Agreement) string {
	var s []string
	for _, p := range ag.Parties {
		s = append(s, p.Name+"="+p.Principal)
	}
	return strings.Join(s, ", ")
}

// accept marks the parties the signer speaks for as accepted.
func (x *txExec) accept(ag *record.Agreement) (bool, error) {
	accepted := false
	for i := range ag.Parties {
		ok, err := speaksFor(x.st, x.tx.Signer, ag.Parties[i].Principal, true)
		if err != nil {
			return false, err
		}
		if ok && !ag.Parties[i].Accepted {
			ag.Parties[i].Accepted = true
			accepted = true
		}
	}
	return accepted, nil
}

func (x *txExec) logAgreement(ag *record.Agreement, trigger string) {
	ag.History++
	ag.Updated = x.height
	x.buf.set(record.AgreementEventKey(ag.ID, ag.History), &record.AgreementEvent{Seq: ag.History, Height: x.height, Tx: x.tx.Hash[:], Signer: x.tx.Signer, Trigger: trigger})
}

// activateIfReady starts an agreement every party accepted: its height
// triggers are scheduled and its event triggers subscribed.
func (x *txExec) activateIfReady(ag *record.Agreement, prog *agreements.Program) error {
	ready := true
	for _, p := range ag.Parties {
		ready = ready && p.Accepted
	}
	if ready {
		ag.Status = record.AgreementActive
		for i, ht := range prog.HeightTriggers() {
			switch {
			case ht.Every > 0:
				x.buf.set(scheduleKey(x.height+ht.Every, ag.ID, i), marker)
			default:
				if v, _ := prog.Var(ag.State, ht.At); v.Int > x.height {
					x.buf.set(scheduleKey(v.Int, ag.ID, i), marker)
				}
			}
		}
		for i, et := range prog.EventTriggers() {
			src := et.Agreement
			if src == 0 {
				src = ag.ID
			}
			k := binary.BigEndian.AppendUint64(subscriptionPrefix(src, et.Event), ag.ID)
			x.buf.set(binary.BigEndian.AppendUint16(k, uint16(i)), marker)
		}
	}
	x.buf.set(record.AgreementKey(ag.ID), ag)
	x.emit("agreement", "id", strconv.FormatUint(ag.ID, 10), "name", ag.Name, "status", ag.Status)
	return nil
}

func (x *txExec) agreementAccept(m *record.AgreementAccept) error {
	ag, err := x.st.Agreement(m.ID)
	if err != nil {
		return notFound(err)
	}
	if ag.Status != record.AgreementProposed {
		return record.Errf(record.CodeConflict, "agreement %d is %s; only a proposed agreement is accepted", ag.ID, ag.Status)
	}
	accepted, err := x.accept(ag)
	if err != nil {
		return err
	}
	if !accepted {
		return record.Errf(record.CodeUnauthorized, "%s speaks for no party of agreement %d that has not accepted yet (parties: %s)", x.tx.Signer, ag.ID, partyList(ag))
	}
	prog, err := x.progs.get(ag)
	if err != nil {
		return record.Errf(record.CodeInvalid, "agreement %d does not compile: %v", ag.ID, err)
	}
	x.logAgreement(ag, "accept")
	return x.activateIfReady(ag, prog)
}

func (x *txExec) agreementCall(m *record.AgreementCall) error {
	_, err := x.agreementCallRun(m)
	return err
}

func (x *txExec) agreementCallRun(m *record.AgreementCall) (*agRunner, error) {
	ag, err := x.st.Agreement(m.ID)
	if err != nil {
		return nil, notFound(err)
	}
	in := &agreements.Input{Agreement: m.ID, Height: x.height, Signer: x.tx.Signer, Args: m.Args}
	kind := "call"
	if m.Reading != nil {
		kind = "reading"
		if in.Reading, err = verifyReading(x.st, m.Reading); err != nil {
			return nil, err
		}
	} else {
		for _, p := range ag.Parties {
			ok, err := speaksFor(x.st, x.tx.Signer, p.Principal, false)
			if err != nil {
				return nil, err
			}
			if ok {
				in.SignerParties = append(in.SignerParties, p.Name)
			}
		}
	}
	r := x.runner()
	defer x.flushEvents()
	return r, r.trigger(m.ID, m.Transition, kind, in)
}

// DryRun is what an agreement tx would do on the latest committed state.
type DryRun struct {
	Height int64   `json:"height"` // the committed state it ran on (as block Height+1)
	OK     bool    `json:"ok"`
	Code   string  `json:"code,omitempty"`
	Error  string  `json:"error,omitempty"`
	Trace  []Trace `json:"trace"` // every transition run, events included
	Cost   uint64  `json:"cel_cost"`
}

// DryRun executes an agreement.call or agreement.deploy by signer as if
// it were in the next block, against the latest committed state, and
// throws the result away. Nonce and signature are not checked.
func (a *App) DryRun(signer string, m record.Msg) (*DryRun, error) {
	base, err := a.View(0)
	if err != nil {
		return nil, err
	}
	buf := newBuffer(readOnly{base.r})
	st := &State{r: buf, Height: base.Height}
	out := &DryRun{Height: base.Height, Trace: []Trace{}}
	fail := func(err error) (*DryRun, error) {
		if storageError(err) {
			return nil, err
		}
		out.Code, out.Error = record.CodeOf(err).String(), logOf(err)
		return out, nil
	}
	if err := m.ValidateBasic(); err != nil {
		return fail(record.Errf(record.CodeInvalid, "%v", err))
	}
	x := &txExec{st: st, buf: buf, tx: &record.Tx{Body: record.Body{Signer: signer, Kind: m.Kind()}, Msg: m}, chainID: a.ChainID(), height: base.Height + 1, progs: a.progs}
	if d, err := st.Device(signer); err == nil {
		x.device = d
	}
	switch m := m.(type) {
	case *record.AgreementCall:
		r, err := x.agreementCallRun(m)
		if r != nil {
			out.Trace = append(out.Trace, r.trace...)
		}
		if err != nil {
			return fail(err)
		}
	case *record.AgreementDeploy:
		if err := x.agreementDeploy(m); err != nil {
			return fail(err)
		}
		id, _ := st.u64([]byte(record.KeyAgreementSeq))
		ag, err := st.Agreement(id)
		if err != nil {
			return nil, err
		}
		prog, err := a.progs.get(ag)
		if err != nil {
			return fail(record.Errf(record.CodeInvalid, "%v", err))
		}
		out.Trace = append(out.Trace, Trace{Agreement: id, Trigger: "deploy", State: prog.StateMap(ag.State)})
	default:
		return nil, fmt.Errorf("a dry run takes %s or %s, not %s", record.KindAgreementCall, record.KindAgreementDeploy, m.Kind())
	}
	out.OK = true
	for _, t := range out.Trace {
		out.Cost += t.Cost
	}
	return out, nil
}

// verifyReading checks reading evidence against the ledger: the anchor of
// the gateway's log at the given size, the envelope's inclusion under its
// root, the signer's registration and signature. It returns the reading.
func verifyReading(st *State, ev *record.ReadingEvidence) (*agreements.Reading, error) {
	var a record.Anchor
	ok, err := st.get(record.AnchorAtKey(ev.Gateway, ev.Size), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, record.Errf(record.CodeNotFound, "gateway %s never anchored its log at size %d", ev.Gateway, ev.Size)
	}
	if ev.AuthHeight != 0 && ev.AuthHeight >= a.Height {
		return nil, record.Errf(record.CodeInvalid, "the reading's entry says it was authenticated at height %d, not before its anchor at height %d", ev.AuthHeight, a.Height)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(reading.EntryBytes(ev.AuthHeight, ev.Envelope))
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, ev.Index, ev.Size, leaf, ev.Inclusion, a.Root); err != nil {
		return nil, record.Errf(record.CodeInvalid, "the reading is not entry %d of %s's log anchored at size %d: %v", ev.Index, ev.Gateway, ev.Size, err)
	}
	env, err := reading.Decode(ev.Envelope)
	if err != nil {
		return nil, record.Errf(record.CodeInvalid, "reading: %v", err)
	}
	// The signer rule (SignerKeyAt), from the signer's history in the
	// current state: registered, active and holding the key that signed at
	// the height the gateway authenticated the reading (the anchor's for
	// layout 1). Every replica reads the same current state, so this is
	// deterministic whatever older versions a node keeps.
	at := ev.AuthHeight
	if at == 0 {
		at = a.Height
	}
	held, _, err := st.HistoryAt(env.Signer(), at)
	if err != nil {
		return nil, record.Errf(record.CodeNotFound, "the reading's signer: %v", err)
	}
	key, err := record.SignerKeyAt(env.Signer(), at, held)
	if err != nil {
		return nil, record.Errf(record.CodeInactive, "the reading's signer: %v", err)
	}
	if env.Attester != "" {
		d, err := st.Device(env.Device)
		if err != nil {
			return nil, record.Errf(record.CodeNotFound, "the reading's device: %v", err)
		}
		if d.AttestedBy != env.Attester {
			return nil, record.Errf(record.CodeUnauthorized, "device %s is not attested by %s", d.ID, env.Attester)
		}
	}
	pub, err := identity.ParseDID(key)
	if err != nil {
		return nil, record.Errf(record.CodeUnknownSigner, "the reading's signer %s has an unreadable key: %v", env.Signer(), err)
	}
	if err := env.Verify(pub); err != nil {
		return nil, record.Errf(record.CodeBadSignature, "the reading's signature: %v", err)
	}
	if int(ev.Item) >= len(env.Readings) {
		return nil, record.Errf(record.CodeInvalid, "the envelope holds %d readings; item %d is not one", len(env.Readings), ev.Item)
	}
	rd := env.Readings[ev.Item]
	if rd.Value == nil {
		return nil, record.Errf(record.CodeInvalid, "reading %d of %s holds bytes; only number readings trigger agreements", rd.Seq, env.Device)
	}
	return &agreements.Reading{Device: env.Device, Seq: rd.Seq, Time: rd.Time.UnixMilli(), ContentType: rd.ContentType, Value: *rd.Value}, nil
}

// runScheduled runs the height-triggered transitions due at height, at
// most MaxScheduledPerBlock of them, in key order (height, agreement,
// trigger); the rest stay due for the next blocks.
func (a *App) runScheduled(height int64) ([]eventSink, error) {
	buf := newBuffer(a.tree)
	st := &State{r: buf, Height: height}
	type due struct {
		key    []byte
		height int64
		id     uint64
		idx    int
	}
	var dues []due
	start := []byte(record.PrefixSchedule)
	err := st.scan(start, scheduleKey(height+1, 0, 0), func(k, _ []byte) (bool, error) {
		rest := k[len(record.PrefixSchedule):]
		dues = append(dues, due{slices.Clone(k), int64(binary.BigEndian.Uint64(rest)), binary.BigEndian.Uint64(rest[8:]), int(binary.BigEndian.Uint16(rest[16:]))})
		return len(dues) < MaxScheduledPerBlock, nil
	})
	if err != nil || len(dues) == 0 {
		return nil, err
	}
	var events []eventSink
	for _, d := range dues {
		buf.del(d.key)
		ag, err := st.Agreement(d.id)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, err
		}
		if ag.Status != record.AgreementActive {
			continue
		}
		prog, err := a.progs.get(ag)
		if err != nil {
			continue
		}
		hts := prog.HeightTriggers()
		if d.idx >= len(hts) {
			continue
		}
		ht := hts[d.idx]
		r := &agRunner{ops: &ledgerOps{st: st, buf: buf, height: height, events: &events}, progs: a.progs}
		if err := r.trigger(d.id, ht.Transition, "height", &agreements.Input{Agreement: d.id, Height: height}); err != nil {
			if err := r.recordFailure(d.id, ht.Transition, "height", err); err != nil {
				return nil, err
			}
		}
		if ht.Every > 0 {
			if ag, err := st.Agreement(d.id); err == nil && ag.Status == record.AgreementActive {
				buf.set(scheduleKey(height+ht.Every, d.id, d.idx), marker)
			}
		}
	}
	return events, buf.flush()
}
