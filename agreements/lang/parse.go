package lang

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse reads an agreement document (YAML, or JSON, which is YAML) and
// checks its structure: known keys, names, types, party references. CEL
// expressions are checked by Compile. Errors are *Error and point at the
// line and field.
func Parse(src []byte) (*Doc, error) {
	return ParseWithLimits(src, DefaultLimits())
}

// ParseWithLimits is Parse with explicit limits.
func ParseWithLimits(src []byte, lim Limits) (*Doc, error) {
	if len(src) > lim.SourceBytes {
		return nil, ErrAt(Pos{}, "", "the document is %d bytes; at most %d", len(src), lim.SourceBytes)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, yamlError(err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return nil, ErrAt(Pos{1, 1}, "", "the document is empty; want a mapping with agreement, parties, state and transitions")
	}
	p := &parser{lim: lim}
	d, err := p.doc(root.Content[0])
	if err != nil {
		return nil, err
	}
	return d, nil
}

// yamlError turns a YAML syntax error into an *Error with its line.
func yamlError(err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ":"); ok {
			if v, perr := strconv.Atoi(n); perr == nil {
				line, msg = v, strings.TrimSpace(tail)
			}
		}
	}
	return &Error{Pos: Pos{Line: line}, Msg: "syntax: " + msg}
}

type parser struct {
	lim Limits
	d   *Doc
}

func pos(n *yaml.Node) Pos { return Pos{Line: n.Line, Column: n.Column} }

// pairs returns a mapping's key/value nodes, refusing duplicate and unknown keys.
func pairs(n *yaml.Node, field string, known ...string) ([][2]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, ErrAt(pos(n), field, "want a mapping (key: value lines), found %s", kindName(n))
	}
	seen := map[string]bool{}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, ErrAt(pos(k), field, "a key must be a plain name")
		}
		if seen[k.Value] {
			return nil, ErrAt(pos(k), field, "key %q appears twice", k.Value)
		}
		seen[k.Value] = true
		if len(known) > 0 && !contains(known, k.Value) {
			return nil, ErrAt(pos(k), join(field, k.Value), "unknown key %q (known: %s)", k.Value, strings.Join(known, ", "))
		}
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func scalar(n *yaml.Node, field string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", ErrAt(pos(n), field, "want a single value, found %s", kindName(n))
	}
	return n.Value, nil
}

// checkName checks an identifier: a letter, then letters, digits and '_', at most 32.
func checkName(s string, p Pos, field string) error {
	if s == "" || len(s) > 32 {
		return ErrAt(p, field, "name %q must be 1 to 32 characters", s)
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return ErrAt(p, field, "name %q may hold only letters, digits (not first) and '_'", s)
		}
	}
	if reserved[s] {
		return ErrAt(p, field, "name %q is a CEL reserved word", s)
	}
	return nil
}

var reserved = map[string]bool{
	"true": true, "false": true, "null": true, "in": true, "as": true, "break": true, "const": true,
	"continue": true, "else": true, "for": true, "function": true, "if": true, "import": true, "let": true,
	"loop": true, "package": true, "namespace": true, "return": true, "var": true, "void": true, "while": true,
}

func (p *parser) doc(n *yaml.Node) (*Doc, error) {
	ps, err := pairs(n, "", "agreement", "description", "parties", "state", "transitions")
	if err != nil {
		return nil, err
	}
	d := &Doc{}
	p.d = d
	var transitions *yaml.Node
	for _, kv := range ps {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "agreement":
			if d.Name, err = scalar(v, "agreement"); err != nil {
				return nil, err
			}
			if len(d.Name) == 0 || len(d.Name) > 64 {
				return nil, ErrAt(pos(v), "agreement", "the name must be 1 to 64 characters")
			}
		case "description":
			if d.Description, err = scalar(v, "description"); err != nil {
				return nil, err
			}
			if len(d.Description) > 1024 {
				return nil, ErrAt(pos(v), "description", "at most 1024 bytes")
			}
		case "parties":
			if err := p.parties(v); err != nil {
				return nil, err
			}
		case "state":
			if err := p.state(v); err != nil {
				return nil, err
			}
		case "transitions":
			transitions = v // after parties and state, whatever the key order
		}
	}
	if d.Name == "" {
		return nil, ErrAt(pos(n), "agreement", "the agreement has no name (add `agreement: NAME`)")
	}
	if len(d.Parties) == 0 {
		return nil, ErrAt(pos(n), "parties", "the agreement has no parties")
	}
	if transitions == nil {
		return nil, ErrAt(pos(n), "transitions", "the agreement has no transitions")
	}
	if err := p.transitions(transitions); err != nil {
		return nil, err
	}
	return d, nil
}

func (p *parser) party(name string) *Party {
	for i := range p.d.Parties {
		if p.d.Parties[i].Name == name {
			return &p.d.Parties[i]
		}
	}
	return nil
}

func (p *parser) stateVar(name string) *Var {
	for i := range p.d.State {
		if p.d.State[i].Name == name {
			return &p.d.State[i]
		}
	}
	return nil
}

// parties: NAME: device | org | {device: ID} | {org: ID}
func (p *parser) parties(n *yaml.Node) error {
	ps, err := pairs(n, "parties")
	if err != nil {
		return err
	}
	if len(ps) > p.lim.Parties {
		return ErrAt(pos(n), "parties", "%d parties; at most %d", len(ps), p.lim.Parties)
	}
	for _, kv := range ps {
		k, v := kv[0], kv[1]
		field := "parties." + k.Value
		if err := checkName(k.Value, pos(k), field); err != nil {
			return err
		}
		pt := Party{Name: k.Value, Pos: pos(k)}
		switch v.Kind {
		case yaml.ScalarNode:
			pt.Kind = PartyKind(v.Value)
		case yaml.MappingNode:
			vs, err := pairs(v, field, "device", "org")
			if err != nil {
				return err
			}
			if len(vs) != 1 {
				return ErrAt(pos(v), field, "want exactly one of device: ID or org: ID")
			}
			pt.Kind = PartyKind(vs[0][0].Value)
			if pt.ID, err = scalar(vs[0][1], field); err != nil {
				return err
			}
			if err := CheckPartyID(pt.Kind, pt.ID); err != nil {
				return ErrAt(pos(vs[0][1]), field, "%v", err)
			}
		default:
			return ErrAt(pos(v), field, "want device, org, {device: ID} or {org: ID}")
		}
		if pt.Kind != PartyDevice && pt.Kind != PartyOrg {
			return ErrAt(pos(v), field, "party kind %q is not device or org", pt.Kind)
		}
		p.d.Parties = append(p.d.Parties, pt)
	}
	return nil
}

// CheckPartyID checks the syntax of a party's id: a did:key for a device,
// an organisation id for an org.
func CheckPartyID(kind PartyKind, id string) error {
	switch kind {
	case PartyDevice:
		rest, ok := strings.CutPrefix(id, "did:key:z")
		if !ok || len(rest) < 40 || len(id) > 256 {
			return fmt.Errorf("device id %q is not a did:key", id)
		}
	case PartyOrg:
		if len(id) < 2 || len(id) > 63 {
			return fmt.Errorf("organisation id %q must be 2 to 63 characters", id)
		}
		for i, c := range id {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
				return fmt.Errorf("organisation id %q may hold only a-z, 0-9 and '-' (not first)", id)
			}
		}
	default:
		return fmt.Errorf("party kind %q is not device or org", kind)
	}
	return nil
}

// vars parses NAME: TYPE | {type: TYPE, init: EXPR} (init only for state).
func (p *parser) vars(n *yaml.Node, field string, withInit bool) ([]Var, error) {
	ps, err := pairs(n, field)
	if err != nil {
		return nil, err
	}
	if len(ps) > p.lim.Vars {
		return nil, ErrAt(pos(n), field, "%d variables; at most %d", len(ps), p.lim.Vars)
	}
	var out []Var
	for _, kv := range ps {
		k, v := kv[0], kv[1]
		f := field + "." + k.Value
		if err := checkName(k.Value, pos(k), f); err != nil {
			return nil, err
		}
		vr := Var{Name: k.Value, Pos: pos(k)}
		switch v.Kind {
		case yaml.ScalarNode:
			vr.Type = Type(v.Value)
		case yaml.MappingNode:
			known := []string{"type"}
			if withInit {
				known = append(known, "init")
			}
			vs, err := pairs(v, f, known...)
			if err != nil {
				return nil, err
			}
			for _, e := range vs {
				switch e[0].Value {
				case "type":
					s, err := scalar(e[1], f+".type")
					if err != nil {
						return nil, err
					}
					vr.Type = Type(s)
				case "init":
					if vr.Init, err = p.expr(e[1], f+".init"); err != nil {
						return nil, err
					}
				}
			}
		default:
			return nil, ErrAt(pos(v), f, "want a type (int, bool, string, credits) or {type: T, init: EXPR}")
		}
		if !vr.Type.valid() {
			return nil, ErrAt(pos(v), f, "type %q is not int, bool, string or credits", vr.Type)
		}
		out = append(out, vr)
	}
	return out, nil
}

func (p *parser) state(n *yaml.Node) error {
	vs, err := p.vars(n, "state", true)
	if err != nil {
		return err
	}
	p.d.State = vs
	return nil
}

// expr reads a CEL expression: a scalar (numbers and booleans are
// expressions too).
func (p *parser) expr(n *yaml.Node, field string) (*Expr, error) {
	s, err := scalar(n, field)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(s) == "" {
		return nil, ErrAt(pos(n), field, "the expression is empty")
	}
	if len(s) > p.lim.ExprBytes {
		return nil, ErrAt(pos(n), field, "the expression is %d bytes; at most %d", len(s), p.lim.ExprBytes)
	}
	return &Expr{Src: s, Pos: pos(n), Field: field}, nil
}

func (p *parser) transitions(n *yaml.Node) error {
	ps, err := pairs(n, "transitions")
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return ErrAt(pos(n), "transitions", "the agreement has no transitions")
	}
	if len(ps) > p.lim.Transitions {
		return ErrAt(pos(n), "transitions", "%d transitions; at most %d", len(ps), p.lim.Transitions)
	}
	for _, kv := range ps {
		t, err := p.transition(kv[0], kv[1])
		if err != nil {
			return err
		}
		p.d.Transitions = append(p.d.Transitions, *t)
	}
	return nil
}

func (p *parser) transition(k, v *yaml.Node) (*Transition, error) {
	field := "transitions." + k.Value
	if err := checkName(k.Value, pos(k), field); err != nil {
		return nil, err
	}
	ps, err := pairs(v, field, "on", "args", "when", "do")
	if err != nil {
		return nil, err
	}
	t := &Transition{Name: k.Value, Pos: pos(k)}
	var onNode, argsNode *yaml.Node
	for _, kv := range ps {
		switch kv[0].Value {
		case "on":
			onNode = kv[1]
		case "args":
			argsNode = kv[1]
		case "when":
			if t.Guard, err = p.expr(kv[1], field+".when"); err != nil {
				return nil, err
			}
		case "do":
			if t.Effects, err = p.effects(kv[1], field+".do"); err != nil {
				return nil, err
			}
		}
	}
	if onNode == nil {
		return nil, ErrAt(pos(v), field, "the transition has no trigger (add on: {call: PARTY}, {reading: DEVICE}, {every: N}, {at: VAR} or {event: NAME})")
	}
	if t.Trigger, err = p.trigger(onNode, field+".on"); err != nil {
		return nil, err
	}
	if argsNode != nil {
		if t.Trigger.Kind != TriggerCall {
			return nil, ErrAt(pos(argsNode), field+".args", "only call transitions take arguments")
		}
		if t.Args, err = p.vars(argsNode, field+".args", false); err != nil {
			return nil, err
		}
	}
	if len(t.Effects) == 0 {
		return nil, ErrAt(pos(v), field, "the transition has no effects (add do: [...])")
	}
	return t, nil
}

func (p *parser) checkParty(name string, n *yaml.Node, field string, kind PartyKind) error {
	pt := p.party(name)
	if pt == nil {
		return ErrAt(pos(n), field, "unknown party %q (parties: %s)", name, strings.Join(p.partyNames(), ", "))
	}
	if kind != "" && pt.Kind != kind {
		return ErrAt(pos(n), field, "party %q is a %s; want a %s", name, pt.Kind, kind)
	}
	return nil
}

func (p *parser) partyNames() []string {
	var ns []string
	for _, pt := range p.d.Parties {
		ns = append(ns, pt.Name)
	}
	return ns
}

func (p *parser) trigger(n *yaml.Node, field string) (Trigger, error) {
	ps, err := pairs(n, field, "call", "reading", "type", "every", "at", "event", "agreement")
	if err != nil {
		return Trigger{}, err
	}
	tr := Trigger{Pos: pos(n)}
	set := func(k TriggerKind, at *yaml.Node) error {
		if tr.Kind != "" {
			return ErrAt(pos(at), field, "a transition has one trigger; found %s and %s", tr.Kind, k)
		}
		tr.Kind = k
		return nil
	}
	var extra []*yaml.Node
	for _, kv := range ps {
		k, v := kv[0], kv[1]
		f := field + "." + k.Value
		switch k.Value {
		case "call":
			if err := set(TriggerCall, k); err != nil {
				return tr, err
			}
			var names []string
			if v.Kind == yaml.SequenceNode {
				for _, e := range v.Content {
					s, err := scalar(e, f)
					if err != nil {
						return tr, err
					}
					names = append(names, s)
				}
			} else {
				s, err := scalar(v, f)
				if err != nil {
					return tr, err
				}
				names = []string{s}
			}
			if len(names) == 0 {
				return tr, ErrAt(pos(v), f, "name the parties that may call, or anyone")
			}
			for _, s := range names {
				if s == Anyone && len(names) == 1 {
					continue
				}
				if err := p.checkParty(s, v, f, ""); err != nil {
					return tr, err
				}
			}
			tr.Callers = names
		case "reading":
			if err := set(TriggerReading, k); err != nil {
				return tr, err
			}
			if tr.Device, err = scalar(v, f); err != nil {
				return tr, err
			}
			if err := p.checkParty(tr.Device, v, f, PartyDevice); err != nil {
				return tr, err
			}
		case "every":
			if err := set(TriggerHeight, k); err != nil {
				return tr, err
			}
			s, err := scalar(v, f)
			if err != nil {
				return tr, err
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 1 || n > 1_000_000 {
				return tr, ErrAt(pos(v), f, "every %q must be a number of blocks, 1 to 1000000", s)
			}
			tr.Every = n
		case "at":
			if err := set(TriggerHeight, k); err != nil {
				return tr, err
			}
			if tr.At, err = scalar(v, f); err != nil {
				return tr, err
			}
			sv := p.stateVar(tr.At)
			if sv == nil {
				return tr, ErrAt(pos(v), f, "unknown state variable %q", tr.At)
			}
			if sv.Type != TypeInt {
				return tr, ErrAt(pos(v), f, "state variable %q is %s; at: takes an int variable holding a height", tr.At, sv.Type)
			}
		case "event":
			if err := set(TriggerEvent, k); err != nil {
				return tr, err
			}
			if tr.Event, err = scalar(v, f); err != nil {
				return tr, err
			}
			if err := checkName(tr.Event, pos(v), f); err != nil {
				return tr, err
			}
		case "type", "agreement":
			extra = append(extra, k, v)
		}
	}
	if tr.Kind == "" {
		return tr, ErrAt(pos(n), field, "no trigger: want call, reading, every, at or event")
	}
	for i := 0; i+1 < len(extra); i += 2 {
		k, v := extra[i], extra[i+1]
		f := field + "." + k.Value
		switch {
		case k.Value == "type" && tr.Kind == TriggerReading:
			if tr.ContentType, err = scalar(v, f); err != nil {
				return tr, err
			}
			if tr.ContentType == "" || len(tr.ContentType) > 64 {
				return tr, ErrAt(pos(v), f, "a content type is 1 to 64 characters")
			}
		case k.Value == "agreement" && tr.Kind == TriggerEvent:
			s, err := scalar(v, f)
			if err != nil {
				return tr, err
			}
			if tr.Agreement, err = strconv.ParseUint(s, 10, 64); err != nil || tr.Agreement == 0 {
				return tr, ErrAt(pos(v), f, "agreement %q must be an agreement id (a number from 1)", s)
			}
		default:
			return tr, ErrAt(pos(k), f, "%s does not apply to a %s trigger", k.Value, tr.Kind)
		}
	}
	return tr, nil
}

var effectKeys = map[EffectKind][]string{
	EffectSet:      nil, // NAME: EXPR pairs
	EffectTransfer: {"from", "to", "amount"},
	EffectEscrow:   {"from", "amount"},
	EffectRelease:  {"to", "of", "amount"},
	EffectCommand:  {"to", "payload"},
	EffectGrant:    {"name", "grantor", "to", "action", "on", "path", "until"},
	EffectRevoke:   nil, // a grant name
	EffectSuspend:  {"device", "reason"},
	EffectResume:   {"device", "reason"},
	EffectEmit:     {"event", "value"},
	EffectFinish:   nil,
}

func (p *parser) effects(n *yaml.Node, field string) ([]Effect, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, ErrAt(pos(n), field, "want a list of effects (- set: ..., - transfer: ..., ...)")
	}
	if len(n.Content) > p.lim.Effects {
		return nil, ErrAt(pos(n), field, "%d effects; at most %d", len(n.Content), p.lim.Effects)
	}
	var out []Effect
	for i, en := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		e, err := p.effect(en, f)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, nil
}

func (p *parser) effect(n *yaml.Node, field string) (*Effect, error) {
	ps, err := pairs(n, field)
	if err != nil {
		return nil, err
	}
	e := &Effect{Pos: pos(n)}
	var body *yaml.Node
	for _, kv := range ps {
		k, v := kv[0], kv[1]
		if k.Value == "if" {
			if e.When, err = p.expr(v, field+".if"); err != nil {
				return nil, err
			}
			continue
		}
		if _, ok := effectKeys[EffectKind(k.Value)]; !ok {
			return nil, ErrAt(pos(k), field, "unknown effect %q (known: set, transfer, escrow, release, command, grant, revoke, suspend, resume, emit, finish; and if: EXPR)", k.Value)
		}
		if e.Kind != "" {
			return nil, ErrAt(pos(k), field, "one effect per list item; found %s and %s", e.Kind, k.Value)
		}
		e.Kind, body = EffectKind(k.Value), v
	}
	if e.Kind == "" {
		return nil, ErrAt(pos(n), field, "no effect in this item")
	}
	field += "." + string(e.Kind)
	switch e.Kind {
	case EffectSet:
		bs, err := pairs(body, field)
		if err != nil {
			return nil, err
		}
		if len(bs) == 0 {
			return nil, ErrAt(pos(body), field, "set names no variable")
		}
		for _, kv := range bs {
			sv := p.stateVar(kv[0].Value)
			if sv == nil {
				return nil, ErrAt(pos(kv[0]), field, "unknown state variable %q", kv[0].Value)
			}
			x, err := p.expr(kv[1], field+"."+kv[0].Value)
			if err != nil {
				return nil, err
			}
			e.Set = append(e.Set, Assign{Var: sv.Name, Expr: x})
		}
		return e, nil
	case EffectRevoke:
		if e.Name, err = scalar(body, field); err != nil {
			return nil, err
		}
		return e, checkName(e.Name, pos(body), field)
	case EffectFinish:
		if body.Kind == yaml.ScalarNode && (body.Value == "true" || body.Value == "") ||
			body.Kind == yaml.MappingNode && len(body.Content) == 0 {
			return e, nil
		}
		return nil, ErrAt(pos(body), field, "finish takes no arguments (finish: true)")
	}
	bs, err := pairs(body, field, effectKeys[e.Kind]...)
	if err != nil {
		return nil, err
	}
	got := map[string]*yaml.Node{}
	for _, kv := range bs {
		got[kv[0].Value] = kv[1]
	}
	need := func(key string) (*yaml.Node, error) {
		v := got[key]
		if v == nil {
			return nil, ErrAt(pos(body), field, "%s is missing", key)
		}
		return v, nil
	}
	partyField := func(key string, kind PartyKind, required bool) (string, error) {
		v := got[key]
		if v == nil {
			if required {
				return "", ErrAt(pos(body), field, "%s is missing", key)
			}
			return "", nil
		}
		s, err := scalar(v, field+"."+key)
		if err != nil {
			return "", err
		}
		return s, p.checkParty(s, v, field+"."+key, kind)
	}
	exprField := func(key string, required bool) (*Expr, error) {
		v := got[key]
		if v == nil {
			if required {
				return nil, ErrAt(pos(body), field, "%s is missing", key)
			}
			return nil, nil
		}
		return p.expr(v, field+"."+key)
	}
	textField := func(key string, max int) (string, error) {
		v := got[key]
		if v == nil {
			return "", nil
		}
		s, err := scalar(v, field+"."+key)
		if err != nil {
			return "", err
		}
		if len(s) > max {
			return "", ErrAt(pos(v), field+"."+key, "at most %d characters", max)
		}
		return s, nil
	}
	switch e.Kind {
	case EffectTransfer:
		if e.From, err = partyField("from", "", true); err != nil {
			return nil, err
		}
		if e.To, err = partyField("to", "", true); err != nil {
			return nil, err
		}
		if e.From == e.To {
			return nil, ErrAt(pos(body), field, "from and to are the same party")
		}
		e.Amount, err = exprField("amount", true)
	case EffectEscrow:
		if e.From, err = partyField("from", "", true); err != nil {
			return nil, err
		}
		e.Amount, err = exprField("amount", true)
	case EffectRelease:
		if e.To, err = partyField("to", "", true); err != nil {
			return nil, err
		}
		if e.Of, err = partyField("of", "", false); err != nil {
			return nil, err
		}
		e.Amount, err = exprField("amount", false)
	case EffectCommand:
		if e.To, err = partyField("to", PartyDevice, true); err != nil {
			return nil, err
		}
		e.Payload, err = exprField("payload", true)
	case EffectSuspend, EffectResume:
		if e.Device, err = partyField("device", PartyDevice, true); err != nil {
			return nil, err
		}
		e.Reason, err = textField("reason", 200)
	case EffectEmit:
		v, err := need("event")
		if err != nil {
			return nil, err
		}
		if e.Event, err = scalar(v, field+".event"); err != nil {
			return nil, err
		}
		if err := checkName(e.Event, pos(v), field+".event"); err != nil {
			return nil, err
		}
		e.Value, err = exprField("value", false)
		if err != nil {
			return nil, err
		}
	case EffectGrant:
		v, err := need("name")
		if err != nil {
			return nil, err
		}
		if e.Name, err = scalar(v, field+".name"); err != nil {
			return nil, err
		}
		if err := checkName(e.Name, pos(v), field+".name"); err != nil {
			return nil, err
		}
		if e.Grantor, err = partyField("grantor", "", true); err != nil {
			return nil, err
		}
		if e.Subject, err = partyField("to", "", true); err != nil {
			return nil, err
		}
		if e.Resource, err = partyField("on", "", true); err != nil {
			return nil, err
		}
		if e.Action, err = textField("action", 32); err != nil {
			return nil, err
		}
		if e.Action == "" {
			return nil, ErrAt(pos(body), field, "action is missing (e.g. read, command)")
		}
		if e.Path, err = textField("path", 200); err != nil {
			return nil, err
		}
		if e.Until, err = exprField("until", false); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// ErrGuard is returned by Fire when a called transition's guard is false.
var ErrGuard = errors.New("the guard is false")
