package agreements

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/thingnet/thingnet/agreements/lang"
)

// Reading is a verified reading that triggers a transition.
type Reading struct {
	Device      string  // device id
	Seq         uint64  // the device's sequence number
	Time        int64   // Unix milliseconds, the device's clock
	ContentType string  // e.g. temperature/celsius
	Value       float64 // the number (readings with bytes cannot trigger)
	// Attester is the gateway that signed the reading for a sensor that
	// cannot sign (gateway-attested, e.g. polled over Modbus); "" when the
	// device signed it itself. Guards see it as reading.attested and
	// reading.attester.
	Attester string
}

// Event is another agreement's (or this one's) emitted event.
type Event struct {
	Agreement uint64
	Name      string
	Value     int64
}

// Input is what fires a transition.
type Input struct {
	Agreement     uint64 // this agreement's id (self)
	Height        int64  // the block being executed
	Signer        string // the tx signer (call and reading triggers)
	SignerParties []string
	Args          map[string]any // call arguments: int64/uint64, string, bool
	Reading       *Reading
	Event         *Event
}

// Result is the outcome of a transition.
type Result struct {
	Instance *lang.Instance `json:"state"`
	Actions  []lang.Action  `json:"actions"`
	Cost     uint64         `json:"cel_cost"`
}

// Errors of Fire. A call whose guard is false fails with ErrGuard.
var (
	ErrFinished   = errors.New("the agreement is finished")
	ErrNoTrigger  = errors.New("the transition is not triggered this way")
	ErrNotAllowed = errors.New("the signer is not a party that may call this transition")
)

// Init returns the initial instance: every state variable's init
// expression evaluated (with height, self and parties).
func (p *Program) Init(agreement uint64, height int64) (*lang.Instance, error) {
	in := &lang.Instance{Vars: make([]lang.Value, len(p.Doc.State)), Deposits: make([]uint64, len(p.Parties)), LastSeq: make([]uint64, len(p.Parties))}
	act := p.activation(in, &Input{Agreement: agreement, Height: height}, nil)
	for i, c := range p.inits {
		if c == nil {
			continue
		}
		v, _, err := p.eval(c, act)
		if err != nil {
			return nil, err
		}
		val, err := p.toValue(c.expr, p.Doc.State[i].Type, v)
		if err != nil {
			return nil, err
		}
		in.Vars[i] = val
	}
	return in, nil
}

// Fire runs transition name on in. It never changes in; the result holds
// the new instance and the actions to apply. A called transition whose
// guard is false returns ErrGuard; height and event transitions whose
// guard is false return (nil, nil).
func (p *Program) Fire(in *lang.Instance, name string, input *Input) (*Result, error) {
	var ct *ctrans
	for _, t := range p.trans {
		if t.t.Name == name {
			ct = t
		}
	}
	if ct == nil {
		return nil, fmt.Errorf("no transition %q (transitions: %s)", name, p.transitionNames())
	}
	if in.Finished {
		return nil, ErrFinished
	}
	t := ct.t
	st := in.Clone()
	if len(st.Deposits) != len(p.Parties) {
		st.Deposits = make([]uint64, len(p.Parties))
	}
	if len(st.LastSeq) != len(p.Parties) {
		st.LastSeq = make([]uint64, len(p.Parties))
	}
	if err := p.checkTrigger(t, st, input); err != nil {
		return nil, err
	}
	res := &Result{Instance: st}
	args, err := p.args(t, input.Args)
	if err != nil {
		return nil, err
	}
	if ct.guard != nil {
		v, cost, err := p.eval(ct.guard, p.activation(st, input, args))
		res.Cost += cost
		if err != nil {
			return nil, err
		}
		if v != types.True {
			if t.Trigger.Kind == lang.TriggerCall || t.Trigger.Kind == lang.TriggerReading {
				return nil, fmt.Errorf("%w: %s", lang.ErrGuard, t.Guard.Src)
			}
			return nil, nil
		}
	}
	for i := range ct.effects {
		if err := p.apply(&ct.effects[i], st, input, args, res); err != nil {
			return nil, fmt.Errorf("%s: %w", ct.effects[i].e.Kind, err)
		}
		if res.Cost > p.lim.TransitionCEL {
			return nil, fmt.Errorf("the transition cost %d CEL units; the limit is %d", res.Cost, p.lim.TransitionCEL)
		}
		if st.Finished {
			break
		}
	}
	return res, nil
}

func (p *Program) transitionNames() string {
	var s string
	for i, t := range p.trans {
		if i > 0 {
			s += ", "
		}
		s += t.t.Name
	}
	return s
}

func (p *Program) checkTrigger(t *lang.Transition, st *lang.Instance, in *Input) error {
	tr := t.Trigger
	switch tr.Kind {
	case lang.TriggerCall:
		if in.Reading != nil || in.Event != nil {
			return fmt.Errorf("%w: %s is called by a party's tx", ErrNoTrigger, t.Name)
		}
		for _, c := range tr.Callers {
			if c == lang.Anyone || slices.Contains(in.SignerParties, c) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s may be called by %v", ErrNotAllowed, t.Name, tr.Callers)
	case lang.TriggerReading:
		r := in.Reading
		if r == nil {
			return fmt.Errorf("%w: %s needs a proven reading of %s", ErrNoTrigger, t.Name, tr.Device)
		}
		i := p.partyIndex(tr.Device)
		if r.Device != p.Parties[i].ID {
			return fmt.Errorf("%w: the reading is from %s; %s watches %s (%s)", ErrNoTrigger, r.Device, t.Name, tr.Device, p.Parties[i].ID)
		}
		if tr.ContentType != "" && r.ContentType != tr.ContentType {
			return fmt.Errorf("%w: the reading is %s; %s watches %s", ErrNoTrigger, r.ContentType, t.Name, tr.ContentType)
		}
		if r.Seq <= st.LastSeq[i] {
			return fmt.Errorf("%w: reading seq %d of %s is not above the last one used, %d (a replay)", ErrNoTrigger, r.Seq, tr.Device, st.LastSeq[i])
		}
		st.LastSeq[i] = r.Seq
		return nil
	case lang.TriggerEvent:
		if in.Event == nil || in.Event.Name != tr.Event || (tr.Agreement != 0 && in.Event.Agreement != tr.Agreement) ||
			(tr.Agreement == 0 && in.Event.Agreement != in.Agreement) {
			return fmt.Errorf("%w: %s waits for event %s", ErrNoTrigger, t.Name, tr.Event)
		}
		return nil
	default: // height
		if in.Reading != nil || in.Event != nil || in.Signer != "" {
			return fmt.Errorf("%w: %s runs at block heights only", ErrNoTrigger, t.Name)
		}
		return nil
	}
}

// args converts call arguments to their declared types; every declared
// argument is required and no other is accepted.
func (p *Program) args(t *lang.Transition, raw map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(t.Args))
	for _, a := range t.Args {
		v, ok := raw[a.Name]
		if !ok {
			return nil, fmt.Errorf("argument %s (%s) is missing", a.Name, a.Type)
		}
		switch a.Type {
		case lang.TypeBool:
			b, ok := v.(bool)
			if !ok {
				return nil, fmt.Errorf("argument %s must be a bool", a.Name)
			}
			out[a.Name] = b
		case lang.TypeString:
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("argument %s must be a string", a.Name)
			}
			if len(s) > p.lim.StringBytes {
				return nil, fmt.Errorf("argument %s is %d bytes; at most %d", a.Name, len(s), p.lim.StringBytes)
			}
			out[a.Name] = s
		default:
			n, err := toInt(v)
			if err != nil {
				return nil, fmt.Errorf("argument %s: %v", a.Name, err)
			}
			if a.Type == lang.TypeCredits && n < 0 {
				return nil, fmt.Errorf("argument %s is credits and must not be negative", a.Name)
			}
			out[a.Name] = n
		}
	}
	if len(raw) > len(t.Args) {
		for _, k := range sortedKeys(raw) {
			if !slices.ContainsFunc(t.Args, func(a lang.Var) bool { return a.Name == k }) {
				return nil, fmt.Errorf("%s takes no argument %q", t.Name, k)
			}
		}
	}
	return out, nil
}

func toInt(v any) (int64, error) {
	switch n := v.(type) {
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case uint64:
		if n > math.MaxInt64 {
			return 0, errors.New("out of range")
		}
		return int64(n), nil
	case string:
		return strconv.ParseInt(n, 10, 64)
	}
	return 0, fmt.Errorf("want an integer, got %T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// activation is the variables an expression sees.
func (p *Program) activation(st *lang.Instance, in *Input, args map[string]any) map[string]any {
	a := map[string]any{"height": in.Height, "self": int64(in.Agreement), "signer": in.Signer, "escrow": int64(st.Escrow())}
	for _, pt := range p.Parties {
		a["parties."+pt.Name] = pt.ID
	}
	for i, v := range p.Doc.State {
		switch v.Type {
		case lang.TypeBool:
			a["state."+v.Name] = st.Vars[i].Bool
		case lang.TypeString:
			a["state."+v.Name] = st.Vars[i].Str
		default:
			a["state."+v.Name] = st.Vars[i].Int
		}
	}
	for _, k := range sortedKeys(args) { // (order does not matter; no map is ranged over in execution)
		a["args."+k] = args[k]
	}
	if r := in.Reading; r != nil {
		a["reading.value"], a["reading.seq"], a["reading.time"] = r.Value, int64(r.Seq), r.Time
		a["reading.type"], a["reading.device"] = r.ContentType, r.Device
		a["reading.attested"], a["reading.attester"] = r.Attester != "", r.Attester
	}
	if e := in.Event; e != nil {
		a["event.name"], a["event.value"], a["event.agreement"] = e.Name, e.Value, int64(e.Agreement)
	}
	return a
}

func (p *Program) eval(c *compiled, act map[string]any) (ref.Val, uint64, error) {
	v, det, err := c.prg.Eval(act)
	var cost uint64
	if det != nil && det.ActualCost() != nil {
		cost = *det.ActualCost()
	}
	if err != nil {
		return nil, cost, lang.ErrAt(c.expr.Pos, c.expr.Field, "%v", err)
	}
	return v, cost, nil
}

func (p *Program) toValue(x *lang.Expr, t lang.Type, v ref.Val) (lang.Value, error) {
	switch t {
	case lang.TypeBool:
		b, ok := v.Value().(bool)
		if !ok {
			return lang.Value{}, lang.ErrAt(x.Pos, x.Field, "the value is %s; want bool", v.Type())
		}
		return lang.Value{Bool: b}, nil
	case lang.TypeString:
		s, ok := v.Value().(string)
		if !ok {
			return lang.Value{}, lang.ErrAt(x.Pos, x.Field, "the value is %s; want string", v.Type())
		}
		if len(s) > p.lim.StringBytes {
			return lang.Value{}, lang.ErrAt(x.Pos, x.Field, "the string is %d bytes; at most %d", len(s), p.lim.StringBytes)
		}
		return lang.Value{Str: s}, nil
	default:
		n, ok := v.Value().(int64)
		if !ok {
			return lang.Value{}, lang.ErrAt(x.Pos, x.Field, "the value is %s; want int", v.Type())
		}
		if t == lang.TypeCredits && n < 0 {
			return lang.Value{}, lang.ErrAt(x.Pos, x.Field, "credits would become %d; they may not be negative", n)
		}
		return lang.Value{Int: n}, nil
	}
}

func (p *Program) evalInt(c *compiled, act map[string]any, res *Result) (int64, error) {
	v, cost, err := p.eval(c, act)
	res.Cost += cost
	if err != nil {
		return 0, err
	}
	n, ok := v.Value().(int64)
	if !ok {
		return 0, lang.ErrAt(c.expr.Pos, c.expr.Field, "the value is %s; want int", v.Type())
	}
	return n, nil
}

func (p *Program) amount(c *compiled, act map[string]any, res *Result) (uint64, error) {
	n, err := p.evalInt(c, act, res)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, lang.ErrAt(c.expr.Pos, c.expr.Field, "the amount is %d; it may not be negative", n)
	}
	return uint64(n), nil
}

func (p *Program) principal(name string) string {
	pt := p.Parties[p.partyIndex(name)]
	return pt.Principal()
}

// apply runs one effect on st and appends its actions.
func (p *Program) apply(ce *ceffect, st *lang.Instance, in *Input, args map[string]any, res *Result) error {
	e := ce.e
	act := p.activation(st, in, args)
	if ce.when != nil {
		v, cost, err := p.eval(ce.when, act)
		res.Cost += cost
		if err != nil {
			return err
		}
		if v != types.True {
			return nil
		}
	}
	self := "agreement:" + strconv.FormatUint(in.Agreement, 10)
	switch e.Kind {
	case lang.EffectSet:
		// Every expression of one set sees the state before the set.
		vals := make([]lang.Value, len(e.Set))
		for i, a := range e.Set {
			v, cost, err := p.eval(ce.set[i], act)
			res.Cost += cost
			if err != nil {
				return err
			}
			if vals[i], err = p.toValue(a.Expr, p.Doc.State[p.varIndex(a.Var)].Type, v); err != nil {
				return err
			}
		}
		for i, a := range e.Set {
			st.Vars[p.varIndex(a.Var)] = vals[i]
		}
	case lang.EffectTransfer:
		n, err := p.amount(ce.amount, act, res)
		if err != nil || n == 0 {
			return err
		}
		res.Actions = append(res.Actions, lang.Action{Kind: lang.EffectTransfer, From: p.principal(e.From), To: p.principal(e.To), Amount: n})
	case lang.EffectEscrow:
		n, err := p.amount(ce.amount, act, res)
		if err != nil || n == 0 {
			return err
		}
		i := p.partyIndex(e.From)
		if st.Deposits[i]+n < n {
			return errors.New("escrow overflows")
		}
		st.Deposits[i] += n
		res.Actions = append(res.Actions, lang.Action{Kind: lang.EffectEscrow, From: p.principal(e.From), To: self, Amount: n})
	case lang.EffectRelease:
		total := st.Escrow()
		n := total
		if ce.amount != nil {
			var err error
			if n, err = p.amount(ce.amount, act, res); err != nil {
				return err
			}
		}
		if e.Of != "" {
			if have := st.Deposits[p.partyIndex(e.Of)]; n > have {
				return fmt.Errorf("releasing %d of %s's deposit, which holds %d", n, e.Of, have)
			}
		} else if n > total {
			return fmt.Errorf("releasing %d; the escrow holds %d", n, total)
		}
		if n == 0 {
			return nil
		}
		left := n
		for i := range st.Deposits {
			if e.Of != "" && p.Parties[i].Name != e.Of {
				continue
			}
			take := min(left, st.Deposits[i])
			st.Deposits[i] -= take
			left -= take
		}
		res.Actions = append(res.Actions, lang.Action{Kind: lang.EffectRelease, From: self, To: p.principal(e.To), Amount: n})
	case lang.EffectCommand:
		v, cost, err := p.eval(ce.payload, act)
		res.Cost += cost
		if err != nil {
			return err
		}
		s, _ := v.Value().(string)
		if len(s) > p.lim.StringBytes {
			return fmt.Errorf("the payload is %d bytes; at most %d", len(s), p.lim.StringBytes)
		}
		res.Actions = append(res.Actions, lang.Action{Kind: lang.EffectCommand, Device: p.Parties[p.partyIndex(e.To)].ID, Payload: []byte(s)})
	case lang.EffectSuspend, lang.EffectResume:
		res.Actions = append(res.Actions, lang.Action{Kind: e.Kind, Device: p.Parties[p.partyIndex(e.Device)].ID, Reason: e.Reason})
	case lang.EffectEmit:
		var v int64
		if ce.value != nil {
			var err error
			if v, err = p.evalInt(ce.value, act, res); err != nil {
				return err
			}
		}
		res.Actions = append(res.Actions, lang.Action{Kind: lang.EffectEmit, Event: e.Event, Value: v})
	case lang.EffectGrant:
		g := &lang.GrantSpec{Name: e.Name, Grantor: p.principal(e.Grantor), Subject: p.principal(e.Subject), Action: e.Action, Resource: p.principal(e.Resource)}
		if e.Path != "" {
			g.Resource += "/" + e.Path
		}
		if ce.until != nil {
			var err error
			if g.Expiry, err = p.evalInt(ce.until, act, res); err != nil {
				return err
			}
			// An expiry of 0 means none in a GrantSpec: an until that
			// evaluates to 0 or less must not make a grant that never
			// expires. Whether the height has passed is the ledger's rule
			// (ledger/rules.go), not the engine's.
			if g.Expiry < 1 {
				return fmt.Errorf("until is %d; a grant's last height is 1 or more", g.Expiry)
			}
		}
		for _, r := range st.Grants {
			if r.Name == e.Name {
				g.Replaces = r.ID
			}
		}
		res.Actions = append(res.Actions, lang.Action{Kind: lang.EffectGrant, Grant: g})
	case lang.EffectRevoke:
		for i, r := range st.Grants {
			if r.Name == e.Name {
				res.Actions = append(res.Actions, lang.Action{Kind: lang.EffectRevoke, RevokeID: r.ID})
				st.Grants = slices.Delete(st.Grants, i, i+1)
				break
			}
		}
	case lang.EffectFinish:
		// What is left in escrow goes back to who deposited it.
		for i, d := range st.Deposits {
			if d > 0 {
				res.Actions = append(res.Actions, lang.Action{Kind: lang.EffectRelease, From: self, To: p.Parties[i].Principal(), Amount: d})
				st.Deposits[i] = 0
			}
		}
		res.Actions = append(res.Actions, lang.Action{Kind: lang.EffectFinish})
		st.Finished = true
	}
	return nil
}

// StateMap returns the instance's variables by name, for display.
func (p *Program) StateMap(in *lang.Instance) map[string]any {
	out := map[string]any{}
	for i, v := range p.Doc.State {
		if i >= len(in.Vars) {
			break
		}
		switch v.Type {
		case lang.TypeBool:
			out[v.Name] = in.Vars[i].Bool
		case lang.TypeString:
			out[v.Name] = in.Vars[i].Str
		default:
			out[v.Name] = in.Vars[i].Int
		}
	}
	return out
}

// Var returns a state variable's value by name.
func (p *Program) Var(in *lang.Instance, name string) (lang.Value, bool) {
	i := p.varIndex(name)
	if i < 0 || i >= len(in.Vars) {
		return lang.Value{}, false
	}
	return in.Vars[i], true
}

// HeightTrigger is a transition that runs at block heights.
type HeightTrigger struct {
	Transition string
	Every      int64  // every N blocks from deployment
	At         string // at the height in this int state variable
}

// HeightTriggers lists the program's height transitions in document order.
func (p *Program) HeightTriggers() []HeightTrigger {
	var out []HeightTrigger
	for _, t := range p.trans {
		if t.t.Trigger.Kind == lang.TriggerHeight {
			out = append(out, HeightTrigger{Transition: t.t.Name, Every: t.t.Trigger.Every, At: t.t.Trigger.At})
		}
	}
	return out
}

// EventTrigger is a transition that waits for an event.
type EventTrigger struct {
	Transition string
	Agreement  uint64 // 0: this agreement
	Event      string
}

// EventTriggers lists the program's event transitions in document order.
func (p *Program) EventTriggers() []EventTrigger {
	var out []EventTrigger
	for _, t := range p.trans {
		if t.t.Trigger.Kind == lang.TriggerEvent {
			out = append(out, EventTrigger{Transition: t.t.Name, Agreement: t.t.Trigger.Agreement, Event: t.t.Trigger.Event})
		}
	}
	return out
}

// ReadingTriggers lists transitions a reading of device (an id) with the
// given content type would trigger, in document order.
func (p *Program) ReadingTriggers(device, contentType string) []string {
	var out []string
	for _, t := range p.trans {
		tr := t.t.Trigger
		if tr.Kind == lang.TriggerReading && p.Parties[p.partyIndex(tr.Device)].ID == device &&
			(tr.ContentType == "" || tr.ContentType == contentType) {
			out = append(out, t.t.Name)
		}
	}
	return out
}
