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
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
)

// Agreement tx kinds.
const (
	KindAgreementDeploy = "agreement.deploy"
	KindAgreementAccept = "agreement.accept"
	KindAgreementCall   = "agreement.call"
)

// State keys of agreements and commands.
const (
	prefixAgreement    = "ag/" // ag/<id u64 BE> -> Agreement
	prefixAgreementLog = "ah/" // ah/<id u64 BE><seq u64 BE> -> AgreementEvent
	prefixCommand      = "cm/" // cm/<device did>/<id u64 BE> -> Command
	prefixSchedule     = "at/" // at/<height u64 BE><agreement u64 BE><trigger u16 BE> -> marker
	prefixSubscription = "ae/" // ae/<source u64 BE><event>\x00<agreement u64 BE><trigger u16 BE> -> marker
	keyAgreementSeq    = "m/agreementseq"
	keyCommandSeq      = "m/commandseq"
)

// Agreement statuses.
const (
	AgreementProposed = "proposed" // waiting for parties to accept
	AgreementActive   = "active"
	AgreementFinished = "finished"
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

// AgreementKey and the functions below return state keys, for proofs.
func AgreementKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixAgreement), id)
}
func AgreementEventKey(id, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte(prefixAgreementLog), id), seq)
}
func CommandKey(device string, id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixCommand+device+"/"), id)
}
func scheduleKey(height int64, id uint64, trigger int) []byte {
	k := binary.BigEndian.AppendUint64([]byte(prefixSchedule), uint64(height))
	k = binary.BigEndian.AppendUint64(k, id)
	return binary.BigEndian.AppendUint16(k, uint16(trigger))
}
func subscriptionPrefix(source uint64, event string) []byte {
	return append(binary.BigEndian.AppendUint64([]byte(prefixSubscription), source), event+"\x00"...)
}

// AgreementDeploy records an agreement. Parties binds the document's
// parties that it leaves open: name -> "device:<did>" or "org:<id>". The
// signer accepts for every party it speaks for (the device itself, an
// admin of the organisation or of the device's organisation) and must
// speak for at least one; the agreement runs once every party accepted.
type AgreementDeploy struct {
	Source  []byte            `cbor:"1,keyasint"`
	Parties map[string]string `cbor:"2,keyasint,omitempty"`
}

func (*AgreementDeploy) Kind() string { return KindAgreementDeploy }
func (m *AgreementDeploy) ValidateBasic() error {
	if len(m.Source) == 0 {
		return errors.New("the agreement document is empty")
	}
	if len(m.Parties) > agreements.DefaultLimits().Parties {
		return fmt.Errorf("%d party bindings; at most %d", len(m.Parties), agreements.DefaultLimits().Parties)
	}
	for _, k := range sortedKeys(m.Parties) {
		p, err := ParsePrincipal(m.Parties[k])
		if err != nil || (p.Type != "org" && p.Type != "device") {
			return fmt.Errorf("party %s: %q is not org:<id> or device:<did>", k, m.Parties[k])
		}
	}
	if _, err := agreements.Parse(m.Source); err != nil {
		return fmt.Errorf("agreement: %w", err)
	}
	return nil
}

// AgreementAccept accepts a proposed agreement for every party the signer
// speaks for.
type AgreementAccept struct {
	ID uint64 `cbor:"1,keyasint"`
}

func (*AgreementAccept) Kind() string { return KindAgreementAccept }
func (m *AgreementAccept) ValidateBasic() error {
	if m.ID == 0 {
		return errors.New("agreement id is missing")
	}
	return nil
}

// AgreementCall fires a transition: a call by a party, or with Reading a
// reading proven to be in a gateway's anchored data log (anyone may send it).
type AgreementCall struct {
	ID         uint64           `cbor:"1,keyasint"`
	Transition string           `cbor:"2,keyasint"`
	Args       map[string]any   `cbor:"3,keyasint,omitempty"` // ints, strings, bools
	Reading    *ReadingEvidence `cbor:"4,keyasint,omitempty"`
}

// ReadingEvidence is a signed reading envelope with an RFC 6962 inclusion
// proof into the log of Gateway as anchored at Size. The leaf is the log
// entry reading.EntryBytes(AuthHeight, Envelope): the envelope alone for
// entries of layout 1 (AuthHeight 0), else with the height at which the
// gateway authenticated it (layout 2).
type ReadingEvidence struct {
	Gateway    string   `cbor:"1,keyasint" json:"gateway"`
	Index      uint64   `cbor:"2,keyasint" json:"index"`
	Size       uint64   `cbor:"3,keyasint" json:"size"`
	Envelope   []byte   `cbor:"4,keyasint" json:"envelope"`
	Inclusion  [][]byte `cbor:"5,keyasint,omitempty" json:"inclusion,omitempty"`
	Item       uint32   `cbor:"6,keyasint,omitempty" json:"item,omitempty"`        // which reading of a batch
	AuthHeight int64    `cbor:"7,keyasint,omitempty" json:"auth_height,omitempty"` // from the log entry; 0 for layout 1
}

func (*AgreementCall) Kind() string { return KindAgreementCall }
func (m *AgreementCall) ValidateBasic() error {
	if m.ID == 0 {
		return errors.New("agreement id is missing")
	}
	if m.Transition == "" || len(m.Transition) > 32 {
		return errors.New("transition name must be 1 to 32 characters")
	}
	if len(m.Args) > 32 {
		return fmt.Errorf("%d arguments; at most 32", len(m.Args))
	}
	keys := make([]string, 0, len(m.Args))
	for k := range m.Args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch v := m.Args[k].(type) {
		case int64, uint64, bool:
		case string:
			if len(v) > 256 {
				return fmt.Errorf("argument %s is longer than 256 bytes", k)
			}
		default:
			return fmt.Errorf("argument %s is a %T; arguments are integers, strings or booleans", k, v)
		}
	}
	if r := m.Reading; r != nil {
		if err := checkDIDSyntax(r.Gateway); err != nil {
			return fmt.Errorf("reading gateway: %w", err)
		}
		if r.Index >= r.Size {
			return fmt.Errorf("reading index %d is not below the log size %d", r.Index, r.Size)
		}
		if len(r.Envelope) == 0 || len(r.Envelope) > reading.MaxEnvelopeSize {
			return fmt.Errorf("reading envelope is %d bytes; want 1 to %d", len(r.Envelope), reading.MaxEnvelopeSize)
		}
		if len(r.Inclusion) > 64 {
			return fmt.Errorf("inclusion proof has %d hashes; at most 64", len(r.Inclusion))
		}
		if r.AuthHeight < 0 {
			return fmt.Errorf("reading authentication height %d is negative", r.AuthHeight)
		}
		for i, h := range r.Inclusion {
			if len(h) != 32 {
				return fmt.Errorf("inclusion hash %d is %d bytes; want 32", i, len(h))
			}
		}
	}
	return nil
}

// Agreement is a deployed agreement.
type Agreement struct {
	ID       uint64               `cbor:"1,keyasint" json:"id"`
	Name     string               `cbor:"2,keyasint" json:"name"`
	Source   []byte               `cbor:"3,keyasint" json:"-"`
	Parties  []AgreementParty     `cbor:"4,keyasint" json:"parties"` // document order
	Deployer string               `cbor:"5,keyasint" json:"deployer"`
	Deployed int64                `cbor:"6,keyasint" json:"deployed"`
	Status   string               `cbor:"7,keyasint" json:"status"`
	State    *agreements.Instance `cbor:"8,keyasint" json:"-"`
	History  uint64               `cbor:"9,keyasint" json:"history"` // number of history entries
	Updated  int64                `cbor:"10,keyasint" json:"updated"`
	Hash     []byte               `cbor:"11,keyasint" json:"hash"` // SHA-256 of Source
}

// AgreementParty is a party as bound at deploy, and whether it accepted.
type AgreementParty struct {
	Name      string `cbor:"1,keyasint" json:"name"`
	Principal string `cbor:"2,keyasint" json:"principal"`
	Accepted  bool   `cbor:"3,keyasint,omitempty" json:"accepted"`
}

// AgreementEvent is one entry of an agreement's history.
type AgreementEvent struct {
	Seq        uint64              `cbor:"1,keyasint" json:"seq"`
	Height     int64               `cbor:"2,keyasint" json:"height"`
	Tx         []byte              `cbor:"3,keyasint,omitempty" json:"tx,omitempty"`
	Signer     string              `cbor:"4,keyasint,omitempty" json:"signer,omitempty"`
	Trigger    string              `cbor:"5,keyasint" json:"trigger"` // deploy, accept, call, reading, height, event
	Transition string              `cbor:"6,keyasint,omitempty" json:"transition,omitempty"`
	Actions    []agreements.Action `cbor:"7,keyasint,omitempty" json:"actions,omitempty"`
	Cost       uint64              `cbor:"8,keyasint,omitempty" json:"cel_cost,omitempty"`
	Error      string              `cbor:"9,keyasint,omitempty" json:"error,omitempty"` // a height or event transition that failed
}

// Command is a command an agreement issued to a device, for the mesh to
// deliver (the device or its gateway reads them with State.Commands).
type Command struct {
	ID         uint64 `cbor:"1,keyasint" json:"id"`
	Device     string `cbor:"2,keyasint" json:"device"`
	Agreement  uint64 `cbor:"3,keyasint" json:"agreement"`
	Transition string `cbor:"4,keyasint" json:"transition"`
	Payload    []byte `cbor:"5,keyasint" json:"payload"`
	Height     int64  `cbor:"6,keyasint" json:"height"`
	Tx         []byte `cbor:"7,keyasint,omitempty" json:"tx,omitempty"`
}

// Agreement returns an agreement.
func (s *State) Agreement(id uint64) (*Agreement, error) {
	var a Agreement
	ok, err := s.get(AgreementKey(id), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("agreement %d: %w", id, ErrNotFound)
	}
	return &a, nil
}

// Agreements lists agreements with id above after, in id order.
func (s *State) Agreements(after uint64, limit int) ([]Agreement, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []Agreement
	err := s.scan(AgreementKey(after+1), prefixEnd([]byte(prefixAgreement)), func(_, v []byte) (bool, error) {
		var a Agreement
		if err := Unmarshal(v, &a); err != nil {
			return false, err
		}
		out = append(out, a)
		return len(out) < limit, nil
	})
	return out, err
}

// AgreementHistory returns up to limit history entries of an agreement from seq from (1-based).
func (s *State) AgreementHistory(id, from uint64, limit int) ([]AgreementEvent, error) {
	if from == 0 {
		from = 1
	}
	if limit <= 0 {
		limit = 100
	}
	var out []AgreementEvent
	p := binary.BigEndian.AppendUint64([]byte(prefixAgreementLog), id)
	err := s.scan(AgreementEventKey(id, from), prefixEnd(p), func(_, v []byte) (bool, error) {
		var e AgreementEvent
		if err := Unmarshal(v, &e); err != nil {
			return false, err
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}

// Commands returns a device's commands with id above after, oldest first.
func (s *State) Commands(device string, after uint64, limit int) ([]Command, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []Command
	err := s.scan(CommandKey(device, after+1), prefixEnd([]byte(prefixCommand+device+"/")), func(_, v []byte) (bool, error) {
		var c Command
		if err := Unmarshal(v, &c); err != nil {
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
func (c *progCache) get(a *Agreement) (*agreements.Program, error) {
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

func compileAgreement(src []byte, parties []AgreementParty) (*agreements.Program, error) {
	d, err := agreements.Parse(src)
	if err != nil {
		return nil, err
	}
	bind := make(map[string]string, len(parties))
	for _, p := range parties {
		bind[p.Name] = p.Principal
	}
	return agreements.Compile(d, bind, agreements.DefaultLimits())
}

// CompileAgreement compiles a deployed agreement (for readers: the API
// shows its state by variable name).
func CompileAgreement(a *Agreement) (*agreements.Program, error) {
	return compileAgreement(a.Source, a.Parties)
}

// Program returns a deployed agreement's compiled program from the
// application's cache (for readers: the API shows state by variable name).
func (a *App) Program(ag *Agreement) (*agreements.Program, error) {
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
	Agreement  uint64              `json:"agreement"`
	Transition string              `json:"transition"`
	Trigger    string              `json:"trigger"`
	Actions    []agreements.Action `json:"actions"`
	Cost       uint64              `json:"cel_cost"`
	State      map[string]any      `json:"state"`
	Error      string              `json:"error,omitempty"`
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
			if ag.Status != AgreementActive {
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
	var e *Error
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
	r.ops.buf.set(AgreementEventKey(id, ag.History), &AgreementEvent{Seq: ag.History, Height: r.ops.height, Tx: r.ops.tx, Signer: r.signer, Trigger: kind, Transition: name, Error: logOf(cause)})
	r.ops.buf.set(AgreementKey(id), ag)
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
	if ag.Status != AgreementActive {
		return nil, errf(CodeConflict, "agreement %d is %s", id, ag.Status)
	}
	prog, err := r.progs.get(ag)
	if err != nil {
		return nil, errf(CodeInvalid, "agreement %d does not compile: %v", id, err)
	}
	res, err := prog.Fire(ag.State, name, in)
	if err != nil {
		code := CodeInvalid
		switch {
		case errors.Is(err, agreements.ErrNotAllowed):
			code = CodeUnauthorized
		case errors.Is(err, agreements.ErrGuard), errors.Is(err, agreements.ErrFinished):
			code = CodeConflict
		}
		return nil, errf(code, "agreement %d %s: %v", id, name, err)
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
			return nil, errf(CodeOf(err), "agreement %d %s: %s: %s", id, name, a.Kind, logOf(err))
		}
		if a.Kind == agreements.EffectEmit {
			out = append(out, fired{ev: agreements.Event{Agreement: id, Name: a.Event, Value: a.Value}})
		}
	}
	if err := reschedule(ops, prog, id, ag.State, res.Instance); err != nil {
		return nil, err
	}
	ag.State = res.Instance
	if res.Instance.Finished {
		ag.Status = AgreementFinished
	}
	ag.History++
	ag.Updated = ops.height
	ops.buf.set(AgreementEventKey(id, ag.History), &AgreementEvent{
		Seq: ag.History, Height: ops.height, Tx: ops.tx, Signer: r.signer, Trigger: kind, Transition: name, Actions: res.Actions, Cost: res.Cost,
	})
	ops.buf.set(AgreementKey(id), ag)
	ops.emit("agreement", "id", strconv.FormatUint(id, 10), "transition", name, "trigger", kind, "status", ag.Status)
	if err := child.flush(); err != nil {
		return nil, err
	}
	*parent.events = append(*parent.events, evs...)
	r.trace = append(r.trace, Trace{Agreement: id, Transition: name, Trigger: kind, Actions: res.Actions, Cost: res.Cost, State: prog.StateMap(res.Instance)})
	return out, nil
}

// reschedule moves the "at" height triggers whose variable changed.
func reschedule(ops *ledgerOps, prog *agreements.Program, id uint64, old, cur *agreements.Instance) error {
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
func (r *agRunner) apply(ops *ledgerOps, ag *Agreement, inst *agreements.Instance, self, transition string, a agreements.Action) error {
	switch a.Kind {
	case agreements.EffectTransfer:
		return ops.move("payment", a.From, a.To, a.Amount, ag.ID, transition)
	case agreements.EffectEscrow:
		return ops.move("escrow", a.From, self, a.Amount, ag.ID, transition)
	case agreements.EffectRelease:
		return ops.move("release", self, a.To, a.Amount, ag.ID, transition)
	case agreements.EffectCommand:
		if _, err := ops.st.Device(a.Device); err != nil {
			return notFound(err)
		}
		id, err := ops.nextSeq(keyCommandSeq)
		if err != nil {
			return err
		}
		ops.buf.set(CommandKey(a.Device, id), &Command{ID: id, Device: a.Device, Agreement: ag.ID, Transition: transition, Payload: a.Payload, Height: ops.height, Tx: ops.tx})
		ops.emit("command", "id", strconv.FormatUint(id, 10), "device", a.Device, "agreement", strconv.FormatUint(ag.ID, 10))
		return nil
	case agreements.EffectSuspend, agreements.EffectResume:
		return r.setStatus(ops, self, a)
	case agreements.EffectGrant:
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
	case agreements.EffectRevoke:
		return revokeAgreementGrant(ops, self, a.RevokeID)
	case agreements.EffectEmit:
		ops.emit("agreement_event", "agreement", strconv.FormatUint(ag.ID, 10), "event", a.Event, "value", strconv.FormatInt(a.Value, 10))
		return nil
	case agreements.EffectFinish:
		return nil
	}
	return errf(CodeInvalid, "unknown action %q", a.Kind)
}

// setStatus suspends or resumes a device, which the agreement may do only
// with a "manage" grant on the device or its organisation.
func (r *agRunner) setStatus(ops *ledgerOps, self string, a agreements.Action) error {
	d, err := ops.st.Device(a.Device)
	if err != nil {
		return notFound(err)
	}
	ok, err := ops.st.HasGrant(self, ActionManage, []string{"device:" + d.ID, "org:" + d.Org}, ops.height)
	if err != nil {
		return err
	}
	if !ok {
		return errf(CodeUnauthorized, "%s has no %q grant on device %s or organisation %q", self, ActionManage, d.ID, d.Org)
	}
	to := StatusSuspended
	if a.Kind == agreements.EffectResume {
		to = StatusActive
	}
	if d.Status == StatusRevoked {
		return errf(CodeConflict, "device %s is revoked", d.ID)
	}
	if d.Status == to {
		return nil
	}
	d.Status = to
	note := string(to)
	if a.Reason != "" {
		note += ": " + a.Reason
	}
	kind := KindDeviceSuspend
	if to == StatusActive {
		kind = KindDeviceResume
	}
	recordDevice(ops.buf, d, Event{Height: ops.height, Tx: ops.tx, Kind: kind, Signer: self, Note: note})
	ops.emit("device", "id", d.ID, "org", d.Org, "action", kind, "status", string(d.Status))
	return nil
}

// ownsResource reports whether grantor owns r: its own resources, and for
// an organisation its devices' resources.
func ownsResource(st *State, grantor Principal, r Resource) (bool, error) {
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

func addAgreementGrant(ops *ledgerOps, self string, g *agreements.GrantSpec) (uint64, error) {
	grantor, err := ParsePrincipal(g.Grantor)
	if err != nil {
		return 0, errf(CodeInvalid, "grantor: %v", err)
	}
	subj, err := ParsePrincipal(g.Subject)
	if err != nil {
		return 0, errf(CodeInvalid, "subject: %v", err)
	}
	if err := validateAction(g.Action); err != nil {
		return 0, errf(CodeInvalid, "%v", err)
	}
	res, err := ParseResource(g.Resource)
	if err != nil {
		return 0, errf(CodeInvalid, "%v", err)
	}
	ok, err := ownsResource(ops.st, grantor, res)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, errf(CodeUnauthorized, "%s does not own %s and cannot grant on it", g.Grantor, g.Resource)
	}
	if err := principalExists(ops.st, subj); err != nil {
		return 0, err
	}
	id, err := ops.nextSeq(keyGrantSeq)
	if err != nil {
		return 0, err
	}
	gr := &Grant{ID: id, Grantor: g.Grantor, Subject: g.Subject, Action: g.Action, Resource: g.Resource, Expiry: g.Expiry, Created: ops.height, Signer: self}
	ops.buf.set(GrantKey(id), gr)
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
		return errf(CodeUnauthorized, "grant %d was not added by %s", id, self)
	}
	if g.Revoked != 0 {
		return nil
	}
	g.Revoked = ops.height
	ops.buf.set(GrantKey(id), g)
	ops.buf.del(grantIdxKey(g.Subject, g.Action, g.Resource, id))
	ops.emit("grant", "id", strconv.FormatUint(id, 10), "action", "revoke", "subject", g.Subject, "resource", g.Resource)
	return nil
}

func principalExists(st *State, p Principal) error {
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
	p, err := ParsePrincipal(principal)
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
		p = Principal{Type: "org", ID: d.Org}
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

func (x *txExec) agreementDeploy(m *AgreementDeploy) error {
	d, err := agreements.Parse(m.Source)
	if err != nil {
		return errf(CodeInvalid, "agreement: %v", err)
	}
	ag := &Agreement{Name: d.Name, Source: m.Source, Deployer: x.tx.Signer, Deployed: x.height, Status: AgreementProposed, Updated: x.height}
	h := sha256.Sum256(m.Source)
	ag.Hash = h[:]
	prog, err := agreements.Compile(d, m.Parties, agreements.DefaultLimits())
	if err != nil {
		return errf(CodeInvalid, "agreement: %v", err)
	}
	for _, p := range prog.Parties {
		ag.Parties = append(ag.Parties, AgreementParty{Name: p.Name, Principal: p.Principal()})
		pr, _ := ParsePrincipal(p.Principal())
		if err := principalExists(x.st, pr); err != nil {
			return errf(CodeNotFound, "party %s: %v", p.Name, logOf(err))
		}
	}
	for _, et := range prog.EventTriggers() {
		if et.Agreement != 0 {
			if _, err := x.st.Agreement(et.Agreement); err != nil {
				return errf(CodeNotFound, "transition %s waits for an event of agreement %d, which does not exist", et.Transition, et.Agreement)
			}
		}
	}
	id, err := x.ops().nextSeq(keyAgreementSeq)
	if err != nil {
		return err
	}
	ag.ID = id
	if ag.State, err = prog.Init(id, x.height); err != nil {
		return errf(CodeInvalid, "agreement: initial state: %v", err)
	}
	accepted, err := x.accept(ag)
	if err != nil {
		return err
	}
	if !accepted {
		return errf(CodeUnauthorized, "%s speaks for no party of the agreement (parties: %s); deploy with a party's key", x.tx.Signer, partyList(ag))
	}
	x.logAgreement(ag, "deploy")
	return x.activateIfReady(ag, prog)
}

func partyList(ag *Agreement) string {
	var s []string
	for _, p := range ag.Parties {
		s = append(s, p.Name+"="+p.Principal)
	}
	return strings.Join(s, ", ")
}

// accept marks the parties the signer speaks for as accepted.
func (x *txExec) accept(ag *Agreement) (bool, error) {
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

func (x *txExec) logAgreement(ag *Agreement, trigger string) {
	ag.History++
	ag.Updated = x.height
	x.buf.set(AgreementEventKey(ag.ID, ag.History), &AgreementEvent{Seq: ag.History, Height: x.height, Tx: x.tx.Hash[:], Signer: x.tx.Signer, Trigger: trigger})
}

// activateIfReady starts an agreement every party accepted: its height
// triggers are scheduled and its event triggers subscribed.
func (x *txExec) activateIfReady(ag *Agreement, prog *agreements.Program) error {
	ready := true
	for _, p := range ag.Parties {
		ready = ready && p.Accepted
	}
	if ready {
		ag.Status = AgreementActive
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
	x.buf.set(AgreementKey(ag.ID), ag)
	x.emit("agreement", "id", strconv.FormatUint(ag.ID, 10), "name", ag.Name, "status", ag.Status)
	return nil
}

func (x *txExec) agreementAccept(m *AgreementAccept) error {
	ag, err := x.st.Agreement(m.ID)
	if err != nil {
		return notFound(err)
	}
	if ag.Status != AgreementProposed {
		return errf(CodeConflict, "agreement %d is %s; only a proposed agreement is accepted", ag.ID, ag.Status)
	}
	accepted, err := x.accept(ag)
	if err != nil {
		return err
	}
	if !accepted {
		return errf(CodeUnauthorized, "%s speaks for no party of agreement %d that has not accepted yet (parties: %s)", x.tx.Signer, ag.ID, partyList(ag))
	}
	prog, err := x.progs.get(ag)
	if err != nil {
		return errf(CodeInvalid, "agreement %d does not compile: %v", ag.ID, err)
	}
	x.logAgreement(ag, "accept")
	return x.activateIfReady(ag, prog)
}

func (x *txExec) agreementCall(m *AgreementCall) error {
	_, err := x.agreementCallRun(m)
	return err
}

func (x *txExec) agreementCallRun(m *AgreementCall) (*agRunner, error) {
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
func (a *App) DryRun(signer string, m Msg) (*DryRun, error) {
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
		out.Code, out.Error = CodeOf(err).String(), logOf(err)
		return out, nil
	}
	if err := m.ValidateBasic(); err != nil {
		return fail(errf(CodeInvalid, "%v", err))
	}
	x := &txExec{st: st, buf: buf, tx: &Tx{Body: Body{Signer: signer, Kind: m.Kind()}, Msg: m}, chainID: a.ChainID(), height: base.Height + 1, progs: a.progs}
	if d, err := st.Device(signer); err == nil {
		x.device = d
	}
	switch m := m.(type) {
	case *AgreementCall:
		r, err := x.agreementCallRun(m)
		if r != nil {
			out.Trace = append(out.Trace, r.trace...)
		}
		if err != nil {
			return fail(err)
		}
	case *AgreementDeploy:
		if err := x.agreementDeploy(m); err != nil {
			return fail(err)
		}
		id, _ := st.u64([]byte(keyAgreementSeq))
		ag, err := st.Agreement(id)
		if err != nil {
			return nil, err
		}
		prog, err := a.progs.get(ag)
		if err != nil {
			return fail(errf(CodeInvalid, "%v", err))
		}
		out.Trace = append(out.Trace, Trace{Agreement: id, Trigger: "deploy", State: prog.StateMap(ag.State)})
	default:
		return nil, fmt.Errorf("a dry run takes %s or %s, not %s", KindAgreementCall, KindAgreementDeploy, m.Kind())
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
func verifyReading(st *State, ev *ReadingEvidence) (*agreements.Reading, error) {
	var a Anchor
	ok, err := st.get(AnchorAtKey(ev.Gateway, ev.Size), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errf(CodeNotFound, "gateway %s never anchored its log at size %d", ev.Gateway, ev.Size)
	}
	if ev.AuthHeight != 0 && ev.AuthHeight >= a.Height {
		return nil, errf(CodeInvalid, "the reading's entry says it was authenticated at height %d, not before its anchor at height %d", ev.AuthHeight, a.Height)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(reading.EntryBytes(ev.AuthHeight, ev.Envelope))
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, ev.Index, ev.Size, leaf, ev.Inclusion, a.Root); err != nil {
		return nil, errf(CodeInvalid, "the reading is not entry %d of %s's log anchored at size %d: %v", ev.Index, ev.Gateway, ev.Size, err)
	}
	env, err := reading.Decode(ev.Envelope)
	if err != nil {
		return nil, errf(CodeInvalid, "reading: %v", err)
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
		return nil, errf(CodeNotFound, "the reading's signer: %v", err)
	}
	key, err := SignerKeyAt(env.Signer(), at, held)
	if err != nil {
		return nil, errf(CodeInactive, "the reading's signer: %v", err)
	}
	if env.Attester != "" {
		d, err := st.Device(env.Device)
		if err != nil {
			return nil, errf(CodeNotFound, "the reading's device: %v", err)
		}
		if d.AttestedBy != env.Attester {
			return nil, errf(CodeUnauthorized, "device %s is not attested by %s", d.ID, env.Attester)
		}
	}
	pub, err := identity.ParseDID(key)
	if err != nil {
		return nil, errf(CodeUnknownSigner, "the reading's signer %s has an unreadable key: %v", env.Signer(), err)
	}
	if err := env.Verify(pub); err != nil {
		return nil, errf(CodeBadSignature, "the reading's signature: %v", err)
	}
	if int(ev.Item) >= len(env.Readings) {
		return nil, errf(CodeInvalid, "the envelope holds %d readings; item %d is not one", len(env.Readings), ev.Item)
	}
	rd := env.Readings[ev.Item]
	if rd.Value == nil {
		return nil, errf(CodeInvalid, "reading %d of %s holds bytes; only number readings trigger agreements", rd.Seq, env.Device)
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
	start := []byte(prefixSchedule)
	err := st.scan(start, scheduleKey(height+1, 0, 0), func(k, _ []byte) (bool, error) {
		rest := k[len(prefixSchedule):]
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
		if ag.Status != AgreementActive {
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
			if ag, err := st.Agreement(d.id); err == nil && ag.Status == AgreementActive {
				buf.set(scheduleKey(height+ht.Every, d.id, d.idx), marker)
			}
		}
	}
	return events, buf.flush()
}
