package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
)

// Condition is a compiled rule condition.
type Condition struct {
	Src       string
	prg       cel.Program
	MaxCost   uint64        // the estimated worst case
	MaxWindow time.Duration // the longest window it reads
}

// Compile checks a condition: its syntax, that it is a bool, its windows
// and its estimated cost. A bad condition is an *Error naming the line and
// column in src.
func Compile(name, src string, lim Limits) (*Condition, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Rule: name, Msg: "the condition (when) is empty"}
	}
	if len(src) > lim.ExprBytes {
		return nil, &Error{Rule: name, Msg: fmt.Sprintf("the condition is %d bytes; the limit is %d", len(src), lim.ExprBytes)}
	}
	e, err := newEnv(lim)
	if err != nil {
		return nil, fmt.Errorf("rules: building the CEL environment: %w", err)
	}
	celSrc, from := rewrite(src)
	at := func(line, col int) *Error {
		off := 0
		for l := 1; l < line && off < len(celSrc); l++ {
			k := strings.IndexByte(celSrc[off:], '\n')
			if k < 0 {
				break
			}
			off += k + 1
		}
		off += col
		if off >= len(from) {
			off = len(src)
		} else {
			off = from[off]
		}
		ln, cl := 1, 1
		for _, c := range src[:min(off, len(src))] {
			if c == '\n' {
				ln, cl = ln+1, 1
			} else {
				cl++
			}
		}
		return &Error{Rule: name, Line: ln, Column: cl}
	}
	ast, iss := e.Compile(celSrc)
	if iss != nil && iss.Err() != nil {
		if errs := iss.Errors(); len(errs) > 0 {
			x := at(errs[0].Location.Line(), errs[0].Location.Column())
			x.Msg = strings.ReplaceAll(errs[0].Message, windowVar+", ", "")
			if strings.Contains(x.Msg, "undeclared reference") {
				x.Msg += "; a condition may use reading.value/type/seq/time, device.id/class/org/labels, " +
					"mean/min/max(TYPE, DURATION), count(DURATION), count(TYPE, DURATION) and last(TYPE)"
			}
			if m := x.Msg; strings.Contains(m, "no matching overload for 'mean'") || strings.Contains(m, "for 'min'") ||
				strings.Contains(m, "for 'max'") || strings.Contains(m, "for 'count'") || strings.Contains(m, "for 'last'") {
				x.Msg += " (window functions take a reading type and a duration such as 5m: mean(temperature, 5m))"
			}
			return nil, x
		}
		return nil, &Error{Rule: name, Msg: iss.Err().Error()}
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, &Error{Rule: name, Line: 1, Column: 1, Msg: fmt.Sprintf("the condition is %s; want bool", ast.OutputType())}
	}
	c := &Condition{Src: src}
	var werr *Error
	celast.PostOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(x celast.Expr) {
		if werr != nil || x.Kind() != celast.CallKind || x.AsCall().FunctionName() != "duration" {
			return
		}
		args := x.AsCall().Args()
		if len(args) != 1 || args[0].Kind() != celast.LiteralKind {
			return
		}
		s, ok := args[0].AsLiteral().(types.String)
		if !ok {
			return
		}
		d, err := time.ParseDuration(string(s))
		loc := ast.NativeRep().SourceInfo().GetStartLocation(x.ID())
		switch {
		case err != nil:
			werr = at(loc.Line(), loc.Column())
			werr.Msg = fmt.Sprintf("%q is not a duration (use 500ms, 30s, 5m or 1h)", string(s))
		case d <= 0 || d > lim.MaxWindow:
			werr = at(loc.Line(), loc.Column())
			werr.Msg = fmt.Sprintf("a window of %v; windows are longer than 0 and at most %v", d, lim.MaxWindow)
		default:
			c.MaxWindow = max(c.MaxWindow, d)
		}
	}))
	if werr != nil {
		return nil, werr
	}
	est, err := e.EstimateCost(ast, estimator{})
	if err != nil {
		return nil, &Error{Rule: name, Msg: "estimating the cost: " + err.Error()}
	}
	if est.Max > lim.ExprCost {
		return nil, &Error{Rule: name, Msg: fmt.Sprintf("the condition may cost up to %d CEL units; the limit is %d (simplify it)", est.Max, lim.ExprCost)}
	}
	c.MaxCost = est.Max
	if c.prg, err = e.Program(ast, cel.CostLimit(lim.ExprCost)); err != nil {
		return nil, &Error{Rule: name, Msg: err.Error()}
	}
	return c, nil
}

// Input is what a condition is evaluated on: the reading that arrived, its
// device and the device's windows.
type Input struct {
	Device  Device
	Type    string
	Value   float64
	Seq     uint64
	Time    time.Time
	windows *deviceWindows
	max     time.Duration
}

// Eval evaluates the condition. An error (a mean over an empty window, the
// cost limit) counts as false for firing and is reported.
func (c *Condition) Eval(in Input) (bool, error) {
	labels := in.Device.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	out, _, err := c.prg.Eval(map[string]any{
		windowVar:       windowVal{dw: in.windows, now: in.Time, max: in.max},
		"reading.value": in.Value, "reading.type": in.Type, "reading.seq": int64(in.Seq), "reading.time": in.Time,
		"device.id": in.Device.ID, "device.class": in.Device.Class, "device.org": in.Device.Org, "device.labels": labels,
	})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("the condition gave %v, not a bool", out)
	}
	return b, nil
}

// estimator bounds what the checker cannot see: strings read from a reading
// or device (at most 256 bytes) and the window functions (10 units each:
// they are computed by the engine over a bounded window, not by CEL).
type estimator struct{}

func (estimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	if len(n.Path()) > 0 {
		return &checker.SizeEstimate{Min: 0, Max: 256}
	}
	return nil
}

func (estimator) EstimateCallCost(fn, _ string, _ *checker.AstNode, _ []checker.AstNode) *checker.CallEstimate {
	if windowFuncs[fn] {
		return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 10, Max: 10}}
	}
	return nil
}
