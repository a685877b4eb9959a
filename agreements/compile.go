package agreements

import (
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/env"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
)

// Program is a compiled agreement: its document with every party bound and
// every CEL expression type-checked, cost-estimated and ready to run.
type Program struct {
	Doc     *Doc
	Parties []Party // bound, in document order
	lim     Limits
	inits   []*compiled // per state variable; nil: zero value
	trans   []*ctrans
}

type compiled struct {
	expr *Expr
	prg  cel.Program
	max  uint64 // estimated worst-case cost
}

type ctrans struct {
	t       *Transition
	guard   *compiled
	effects []ceffect
	maxCost uint64
}

type ceffect struct {
	e                             *Effect
	when                          *compiled
	set                           []*compiled // parallel to e.Set
	amount, payload, until, value *compiled
}

// Compile binds the document's parties (bindings maps a party name to its
// id: a did:key for a device, an organisation id, optionally prefixed
// "device:" or "org:"), type-checks every expression and estimates its
// worst-case cost, refusing any over the limits. Errors are *Error.
func Compile(d *Doc, bindings map[string]string, lim Limits) (*Program, error) {
	p := &Program{Doc: d, lim: lim}
	for _, pt := range d.Parties {
		id, bound := bindings[pt.Name]
		if bound {
			id = strings.TrimPrefix(id, string(pt.Kind)+":")
			if pt.ID != "" && pt.ID != id {
				return nil, errAt(pt.Pos, "parties."+pt.Name, "the document fixes %s to %s; the deployment binds it to %s", pt.Name, pt.ID, id)
			}
			if err := CheckPartyID(pt.Kind, id); err != nil {
				return nil, errAt(pt.Pos, "parties."+pt.Name, "binding: %v", err)
			}
			pt.ID = id
		}
		if pt.ID == "" {
			return nil, errAt(pt.Pos, "parties."+pt.Name, "party %s is not bound: deploy with a binding %s=%s:ID", pt.Name, pt.Name, pt.Kind)
		}
		p.Parties = append(p.Parties, pt)
	}
	for _, name := range sortedKeys(bindings) {
		if p.partyIndex(name) < 0 {
			return nil, errAt(Pos{}, "parties", "the deployment binds %q, which is not a party of the agreement", name)
		}
	}
	base, err := newEnv(d, nil, "")
	if err != nil {
		return nil, err
	}
	for i := range d.State {
		v := &d.State[i]
		if v.Init == nil {
			p.inits = append(p.inits, nil)
			continue
		}
		c, err := p.compile(base, v.Init, v.Type)
		if err != nil {
			return nil, err
		}
		p.inits = append(p.inits, c)
	}
	for i := range d.Transitions {
		t := &d.Transitions[i]
		e, err := newEnv(d, t.Args, t.Trigger.Kind)
		if err != nil {
			return nil, err
		}
		ct := &ctrans{t: t}
		if t.Guard != nil {
			if ct.guard, err = p.compile(e, t.Guard, TypeBool); err != nil {
				return nil, err
			}
			ct.maxCost += ct.guard.max
		}
		for j := range t.Effects {
			ef := &t.Effects[j]
			ce := ceffect{e: ef}
			one := func(x *Expr, typ Type) (*compiled, error) {
				if x == nil {
					return nil, nil
				}
				c, err := p.compile(e, x, typ)
				if err != nil {
					return nil, err
				}
				ct.maxCost += c.max
				return c, nil
			}
			if ce.when, err = one(ef.When, TypeBool); err != nil {
				return nil, err
			}
			for _, a := range ef.Set {
				c, err := one(a.Expr, d.State[p.varIndex(a.Var)].Type)
				if err != nil {
					return nil, err
				}
				ce.set = append(ce.set, c)
			}
			if ce.amount, err = one(ef.Amount, TypeInt); err != nil {
				return nil, err
			}
			if ce.payload, err = one(ef.Payload, TypeString); err != nil {
				return nil, err
			}
			if ce.until, err = one(ef.Until, TypeInt); err != nil {
				return nil, err
			}
			if ce.value, err = one(ef.Value, TypeInt); err != nil {
				return nil, err
			}
			if ef.Kind == EffectRevoke && !p.grantNamed(ef.Name) {
				return nil, errAt(ef.Pos, fmt.Sprintf("transitions.%s.do[%d].revoke", t.Name, j), "no grant effect is named %q", ef.Name)
			}
			ct.effects = append(ct.effects, ce)
		}
		if ct.maxCost > lim.TransitionCEL {
			return nil, errAt(t.Pos, "transitions."+t.Name, "the transition's expressions may cost up to %d CEL units together; the limit is %d", ct.maxCost, lim.TransitionCEL)
		}
		p.trans = append(p.trans, ct)
	}
	return p, nil
}

func (p *Program) grantNamed(name string) bool {
	for _, t := range p.Doc.Transitions {
		for _, e := range t.Effects {
			if e.Kind == EffectGrant && e.Name == name {
				return true
			}
		}
	}
	return false
}

// excluded are the standard library functions an agreement may not call:
// time zone conversions read the host's time zone database, and
// timestamps and durations have no use without a clock.
var excluded = []string{
	"timestamp", "duration", "getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate",
	"getDayOfWeek", "getHours", "getMinutes", "getSeconds", "getMilliseconds",
}

// newEnv declares the variables an expression of a transition with the
// given trigger and arguments may use (kind "" for state initialisers).
func newEnv(d *Doc, args []Var, kind TriggerKind) (*cel.Env, error) {
	sub := env.NewLibrarySubset()
	for _, f := range excluded {
		sub.ExcludeFunctions = append(sub.ExcludeFunctions, env.NewFunction(f))
	}
	opts := []cel.EnvOption{
		cel.StdLib(cel.StdLibSubset(sub)),
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(DefaultLimits().ExprBytes),
		cel.Variable("height", cel.IntType),
		cel.Variable("self", cel.IntType),
	}
	for _, pt := range d.Parties {
		opts = append(opts, cel.Variable("parties."+pt.Name, cel.StringType))
	}
	if kind != "" {
		opts = append(opts, cel.Variable("escrow", cel.IntType), cel.Variable("signer", cel.StringType))
		for _, v := range d.State {
			opts = append(opts, cel.Variable("state."+v.Name, celType(v.Type)))
		}
	}
	for _, a := range args {
		opts = append(opts, cel.Variable("args."+a.Name, celType(a.Type)))
	}
	switch kind {
	case TriggerReading:
		opts = append(opts,
			cel.Variable("reading.value", cel.DoubleType), cel.Variable("reading.seq", cel.IntType),
			cel.Variable("reading.time", cel.IntType), cel.Variable("reading.type", cel.StringType),
			cel.Variable("reading.device", cel.StringType))
	case TriggerEvent:
		opts = append(opts, cel.Variable("event.name", cel.StringType), cel.Variable("event.value", cel.IntType),
			cel.Variable("event.agreement", cel.IntType))
	}
	e, err := cel.NewCustomEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("agreements: building the CEL environment: %w", err)
	}
	return e, nil
}

func celType(t Type) *cel.Type {
	switch t {
	case TypeBool:
		return cel.BoolType
	case TypeString:
		return cel.StringType
	default:
		return cel.IntType
	}
}

// compile type-checks x, wants it to have type want, and estimates its cost.
func (p *Program) compile(e *cel.Env, x *Expr, want Type) (*compiled, error) {
	ast, iss := e.Compile(x.Src)
	if iss != nil && iss.Err() != nil {
		errs := iss.Errors()
		if len(errs) > 0 {
			return nil, p.exprErr(x, errs[0].Location.Line(), errs[0].Location.Column(), errs[0].Message)
		}
		return nil, errAt(x.Pos, x.Field, "%v", iss.Err())
	}
	if err := checkIteration(ast.NativeRep()); err != nil {
		return nil, errAt(x.Pos, x.Field, "%v (in %q)", err, x.Src)
	}
	if got := ast.OutputType(); !got.IsExactType(celType(want)) {
		return nil, errAt(x.Pos, x.Field, "the expression is %s; want %s", got, celType(want))
	}
	est, err := e.EstimateCost(ast, sizeEstimator{max: uint64(p.lim.StringBytes)})
	if err != nil {
		return nil, errAt(x.Pos, x.Field, "estimating the cost: %v", err)
	}
	if est.Max > p.lim.ExprCost {
		return nil, errAt(x.Pos, x.Field, "the expression may cost up to %d CEL units; the limit is %d (simplify it)", est.Max, p.lim.ExprCost)
	}
	prg, err := e.Program(ast, cel.CostLimit(p.lim.ExprCost), cel.EvalOptions(cel.OptTrackCost))
	if err != nil {
		return nil, errAt(x.Pos, x.Field, "%v", err)
	}
	return &compiled{expr: x, prg: prg, max: est.Max}, nil
}

// checkIteration refuses macros (all, exists, exists_one, map, filter)
// over anything but a list: CEL iterates a map in Go's random order, so
// "map" would build lists in a different order on each validator, and
// "exists" would short-circuit after a different number of steps, at a
// different cost.
func checkIteration(a *celast.AST) error {
	var err error
	celast.PostOrderVisit(a.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if err != nil || e.Kind() != celast.ComprehensionKind {
			return
		}
		r := e.AsComprehension().IterRange()
		if t := a.GetType(r.ID()); t == nil || t.Kind() != types.ListKind {
			err = fmt.Errorf("a macro iterates over %v; only lists may be iterated (map iteration order differs between machines)", t)
		}
	}))
	return err
}

// exprErr locates a CEL error inside the document: CEL counts lines and
// columns within the expression (1-based line, 0-based column).
func (p *Program) exprErr(x *Expr, line, col int, msg string) *Error {
	pos := x.Pos
	if line > 1 {
		pos.Line += line - 1
		pos.Column = col + 1
	} else {
		pos.Column += col
	}
	if strings.Contains(msg, "undeclared reference") {
		msg += "; an expression may use height, self, parties.NAME and state.NAME, in a transition signer, escrow and its args.NAME, " +
			"reading.value/seq/time/type/device with a reading trigger, event.name/value/agreement with an event trigger"
	}
	return errAt(pos, x.Field, "%s (in %q)", msg, x.Src)
}

// sizeEstimator bounds the sizes of strings the expressions read: state
// variables, arguments and reading fields hold at most max bytes.
type sizeEstimator struct{ max uint64 }

func (s sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	if len(n.Path()) > 0 {
		return &checker.SizeEstimate{Min: 0, Max: s.max}
	}
	return nil
}

// EstimateCallCost bounds the strings that number conversions produce
// (CEL does not know their size): at most 32 characters.
func (sizeEstimator) EstimateCallCost(_, overload string, _ *checker.AstNode, _ []checker.AstNode) *checker.CallEstimate {
	switch overload {
	case overloads.IntToString, overloads.UintToString, overloads.DoubleToString, overloads.BoolToString:
		return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 1, Max: 1}, ResultSize: &checker.SizeEstimate{Min: 1, Max: 32}}
	}
	return nil
}

func (p *Program) partyIndex(name string) int {
	for i, pt := range p.Parties {
		if pt.Name == name {
			return i
		}
	}
	return -1
}

func (p *Program) varIndex(name string) int {
	for i, v := range p.Doc.State {
		if v.Name == name {
			return i
		}
	}
	return -1
}

// Party returns a bound party by name.
func (p *Program) Party(name string) (Party, bool) {
	i := p.partyIndex(name)
	if i < 0 {
		return Party{}, false
	}
	return p.Parties[i], true
}

// Transition returns a transition by name.
func (p *Program) Transition(name string) (*Transition, bool) {
	for _, t := range p.trans {
		if t.t.Name == name {
			return t.t, true
		}
	}
	return nil, false
}

// MaxCost returns the estimated worst-case CEL cost of a transition.
func (p *Program) MaxCost(name string) uint64 {
	for _, t := range p.trans {
		if t.t.Name == name {
			return t.maxCost
		}
	}
	return 0
}
