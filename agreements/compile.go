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
	"github.com/thingnet/thingnet/agreements/lang"
)

// Program is a compiled agreement: its document with every party bound and
// every CEL expression type-checked, cost-estimated and ready to run.
type Program struct {
	Doc     *lang.Doc
	Parties []lang.Party // bound, in document order
	lim     lang.Limits
	inits   []*compiled // per state variable; nil: zero value
	trans   []*ctrans
}

type compiled struct {
	expr *lang.Expr
	prg  cel.Program
	max  uint64 // estimated worst-case cost
}

type ctrans struct {
	t       *lang.Transition
	guard   *compiled
	effects []ceffect
	maxCost uint64
}

type ceffect struct {
	e                             *lang.Effect
	when                          *compiled
	set                           []*compiled // parallel to e.Set
	amount, payload, until, value *compiled
}

// Compile binds the document's parties (bindings maps a party name to its
// id: a did:key for a device, an organisation id, optionally prefixed
// "device:" or "org:"), type-checks every expression and estimates its
// worst-case cost, refusing any over the limits. Errors are *Error.
func Compile(d *lang.Doc, bindings map[string]string, lim lang.Limits) (*Program, error) {
	p := &Program{Doc: d, lim: lim}
	for _, pt := range d.Parties {
		id, bound := bindings[pt.Name]
		if bound {
			id = strings.TrimPrefix(id, string(pt.Kind)+":")
			if pt.ID != "" && pt.ID != id {
				return nil, lang.ErrAt(pt.Pos, "parties."+pt.Name, "the document fixes %s to %s; the deployment binds it to %s", pt.Name, pt.ID, id)
			}
			if err := lang.CheckPartyID(pt.Kind, id); err != nil {
				return nil, lang.ErrAt(pt.Pos, "parties."+pt.Name, "binding: %v", err)
			}
			pt.ID = id
		}
		if pt.ID == "" {
			return nil, lang.ErrAt(pt.Pos, "parties."+pt.Name, "party %s is not bound: deploy with a binding %s=%s:ID", pt.Name, pt.Name, pt.Kind)
		}
		p.Parties = append(p.Parties, pt)
	}
	for _, name := range sortedKeys(bindings) {
		if p.partyIndex(name) < 0 {
			return nil, lang.ErrAt(lang.Pos{}, "parties", "the deployment binds %q, which is not a party of the agreement", name)
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
			if ct.guard, err = p.compile(e, t.Guard, lang.TypeBool); err != nil {
				return nil, err
			}
			ct.maxCost += ct.guard.max
		}
		for j := range t.Effects {
			ef := &t.Effects[j]
			ce := ceffect{e: ef}
			one := func(x *lang.Expr, typ lang.Type) (*compiled, error) {
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
			if ce.when, err = one(ef.When, lang.TypeBool); err != nil {
				return nil, err
			}
			for _, a := range ef.Set {
				c, err := one(a.Expr, d.State[p.varIndex(a.Var)].Type)
				if err != nil {
					return nil, err
				}
				ce.set = append(ce.set, c)
			}
			if ce.amount, err = one(ef.Amount, lang.TypeInt); err != nil {
				return nil, err
			}
			if ce.payload, err = one(ef.Payload, lang.TypeString); err != nil {
				return nil, err
			}
			if ce.until, err = one(ef.Until, lang.TypeInt); err != nil {
				return nil, err
			}
			if ce.value, err = one(ef.Value, lang.TypeInt); err != nil {
				return nil, err
			}
			if ef.Kind == lang.EffectRevoke && !p.grantNamed(ef.Name) {
				return nil, lang.ErrAt(ef.Pos, fmt.Sprintf("transitions.%s.do[%d].revoke", t.Name, j), "no grant effect is named %q", ef.Name)
			}
			ct.effects = append(ct.effects, ce)
		}
		if ct.maxCost > lim.TransitionCEL {
			return nil, lang.ErrAt(t.Pos, "transitions."+t.Name, "the transition's expressions may cost up to %d CEL units together; the limit is %d", ct.maxCost, lim.TransitionCEL)
		}
		p.trans = append(p.trans, ct)
	}
	return p, nil
}

func (p *Program) grantNamed(name string) bool {
	for _, t := range p.Doc.Transitions {
		for _, e := range t.Effects {
			if e.Kind == lang.EffectGrant && e.Name == name {
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
func newEnv(d *lang.Doc, args []lang.Var, kind lang.TriggerKind) (*cel.Env, error) {
	sub := env.NewLibrarySubset()
	for _, f := range excluded {
		sub.ExcludeFunctions = append(sub.ExcludeFunctions, env.NewFunction(f))
	}
	opts := []cel.EnvOption{
		cel.StdLib(cel.StdLibSubset(sub)),
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(lang.DefaultLimits().ExprBytes),
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
	case lang.TriggerReading:
		opts = append(opts,
			cel.Variable("reading.value", cel.DoubleType), cel.Variable("reading.seq", cel.IntType),
			cel.Variable("reading.time", cel.IntType), cel.Variable("reading.type", cel.StringType),
			cel.Variable("reading.device", cel.StringType), cel.Variable("reading.attested", cel.BoolType),
			cel.Variable("reading.attester", cel.StringType))
	case lang.TriggerEvent:
		opts = append(opts, cel.Variable("event.name", cel.StringType), cel.Variable("event.value", cel.IntType),
			cel.Variable("event.agreement", cel.IntType))
	}
	e, err := cel.NewCustomEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("agreements: building the CEL environment: %w", err)
	}
	return e, nil
}

func celType(t lang.Type) *cel.Type {
	switch t {
	case lang.TypeBool:
		return cel.BoolType
	case lang.TypeString:
		return cel.StringType
	default:
		return cel.IntType
	}
}

// compile type-checks x, wants it to have type want, and estimates its cost.
func (p *Program) compile(e *cel.Env, x *lang.Expr, want lang.Type) (*compiled, error) {
	ast, iss := e.Compile(x.Src)
	if iss != nil && iss.Err() != nil {
		errs := iss.Errors()
		if len(errs) > 0 {
			return nil, p.exprErr(x, errs[0].Location.Line(), errs[0].Location.Column(), errs[0].Message)
		}
		return nil, lang.ErrAt(x.Pos, x.Field, "%v", iss.Err())
	}
	if err := checkIteration(ast.NativeRep()); err != nil {
		return nil, lang.ErrAt(x.Pos, x.Field, "%v (in %q)", err, x.Src)
	}
	if got := ast.OutputType(); !got.IsExactType(celType(want)) {
		return nil, lang.ErrAt(x.Pos, x.Field, "the expression is %s; want %s", got, celType(want))
	}
	est, err := e.EstimateCost(ast, sizeEstimator{max: uint64(p.lim.StringBytes)})
	if err != nil {
		return nil, lang.ErrAt(x.Pos, x.Field, "estimating the cost: %v", err)
	}
	if est.Max > p.lim.ExprCost {
		return nil, lang.ErrAt(x.Pos, x.Field, "the expression may cost up to %d CEL units; the limit is %d (simplify it)", est.Max, p.lim.ExprCost)
	}
	prg, err := e.Program(ast, cel.CostLimit(p.lim.ExprCost), cel.EvalOptions(cel.OptTrackCost))
	if err != nil {
		return nil, lang.ErrAt(x.Pos, x.Field, "%v", err)
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
func (p *Program) exprErr(x *lang.Expr, line, col int, msg string) *lang.Error {
	pos := x.Pos
	if line > 1 {
		pos.Line += line - 1
		pos.Column = col + 1
	} else {
		pos.Column += col
	}
	if strings.Contains(msg, "undeclared reference") {
		msg += "; an expression may use height, self, parties.NAME and state.NAME, in a transition signer, escrow and its args.NAME, " +
			"reading.value/seq/time/type/device/attested/attester with a reading trigger, event.name/value/agreement with an event trigger"
	}
	return lang.ErrAt(pos, x.Field, "%s (in %q)", msg, x.Src)
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
func (p *Program) Party(name string) (lang.Party, bool) {
	i := p.partyIndex(name)
	if i < 0 {
		return lang.Party{}, false
	}
	return p.Parties[i], true
}

// Transition returns a transition by name.
func (p *Program) Transition(name string) (*lang.Transition, bool) {
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
