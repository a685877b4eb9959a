package rules

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"
	"unicode"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// Limits bound what a rule may ask for.
type Limits struct {
	ExprBytes int           // the condition's source
	ExprCost  uint64        // CEL cost units (estimated at compile, enforced at run)
	MaxWindow time.Duration // the longest window a function may span
}

// DefaultLimits are the limits a node applies.
func DefaultLimits() Limits {
	return Limits{ExprBytes: 1024, ExprCost: 1000, MaxWindow: time.Hour}
}

// Error is a bad rule: where (line and column in the condition, 1-based)
// and what.
type Error struct {
	Rule   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rule")
	if e.Rule != "" {
		fmt.Fprintf(&b, " %q", e.Rule)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, " at %d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// windowFuncs are the functions over a device's window; the rewrite gives
// each the window as a hidden first argument.
var windowFuncs = map[string]bool{"mean": true, "min": true, "max": true, "count": true, "last": true}

// windowVar is the hidden variable holding the device's windows.
const windowVar = "_window"

// rewrite turns the rule language into CEL: a bare reading type as the
// first argument of a window function becomes a string
// (mean(temperature, 5m) -> mean(_window, "temperature", duration("5m")))
// and a duration literal (500ms, 30s, 5m, 1h) becomes duration("..."). It
// returns the CEL source and, for each byte of it, the offset in src it
// came from (for error positions).
func rewrite(src string) (string, []int) {
	var out strings.Builder
	var from []int
	emit := func(s string, at int) {
		out.WriteString(s)
		for range len(s) {
			from = append(from, at)
		}
	}
	copyRange := func(a, b int) {
		out.WriteString(src[a:b])
		for k := a; k < b; k++ {
			from = append(from, k)
		}
	}
	isIdent := func(c byte) bool {
		return c == '_' || c < 128 && (unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)))
	}
	skipSpace := func(i int) int {
		for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
			i++
		}
		return i
	}
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '"' || c == '\'': // a string literal: copied as is
			j := i + 1
			for j < len(src) && src[j] != c {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(src))
			copyRange(i, j)
			i = j
		case c >= '0' && c <= '9' && (i == 0 || !isIdent(src[i-1]) && src[i-1] != '.'):
			j := i
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.') {
				j++
			}
			k := j
			for k < len(src) && src[k] >= 'a' && src[k] <= 'z' {
				k++
			}
			unit := src[j:k]
			if (unit == "ms" || unit == "s" || unit == "m" || unit == "h") && (k == len(src) || !isIdent(src[k])) {
				emit(`duration("`, i)
				copyRange(i, k)
				emit(`")`, k-1)
				i = k
				continue
			}
			copyRange(i, j)
			i = j
		case isIdent(c) && (i == 0 || !isIdent(src[i-1]) && src[i-1] != '.'):
			j := i
			for j < len(src) && isIdent(src[j]) {
				j++
			}
			name := src[i:j]
			copyRange(i, j)
			k := skipSpace(j)
			if !windowFuncs[name] || k >= len(src) || src[k] != '(' {
				i = j
				continue
			}
			copyRange(j, k+1)
			emit(windowVar+", ", k)
			i = k + 1
			// A bare identifier first argument (not a call, field or
			// duration) is a reading type.
			a := skipSpace(i)
			b := a
			for b < len(src) && (isIdent(src[b]) || src[b] == '/' || src[b] == '-') {
				b++
			}
			if b > a && !(src[a] >= '0' && src[a] <= '9') {
				e := skipSpace(b)
				if e < len(src) && (src[e] == ',' || src[e] == ')') {
					copyRange(i, a)
					emit(`"`, a)
					copyRange(a, b)
					emit(`"`, b-1)
					i = b
				}
			}
		default:
			copyRange(i, i+1)
			i++
		}
	}
	return out.String(), from
}

// windowType is the CEL type of the hidden window argument.
var windowType = cel.OpaqueType("rules.window")

// windowVal carries a device's windows, at the time of the reading being
// evaluated, into the window functions.
type windowVal struct {
	dw  *deviceWindows
	now time.Time
	max time.Duration
}

func (v windowVal) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("a window has no native form")
}
func (v windowVal) ConvertToType(ref.Type) ref.Val { return types.NewErr("a window does not convert") }
func (v windowVal) Equal(ref.Val) ref.Val          { return types.False }
func (v windowVal) Type() ref.Type                 { return windowType }
func (v windowVal) Value() any                     { return v }

// agg computes fn over the readings of typ ("" for every type) in the
// window of length d ending at the evaluated reading.
func agg(fn string, w ref.Val, typ string, d time.Duration) ref.Val {
	v, ok := w.(windowVal)
	if !ok {
		return types.NewErr("%s: no window", fn)
	}
	if d <= 0 || d > v.max {
		return types.NewErr("%s: a window of %v; windows are 1ms to %v", fn, d, v.max)
	}
	n, sum, lo, hi := 0, 0.0, math.Inf(1), math.Inf(-1)
	v.dw.each(typ, v.now.Add(-d), v.now, func(x float64) {
		n++
		sum += x
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	})
	switch fn {
	case "count":
		return types.Int(n)
	case "mean":
		if n == 0 {
			return types.NewErr("mean(%s, %v): no readings in the window (guard it with count(%s, %v) > 0)", typ, d, typ, d)
		}
		return types.Double(sum / float64(n))
	case "min":
		if n == 0 {
			return types.NewErr("min(%s, %v): no readings in the window", typ, d)
		}
		return types.Double(lo)
	default:
		if n == 0 {
			return types.NewErr("max(%s, %v): no readings in the window", typ, d)
		}
		return types.Double(hi)
	}
}

func newEnv(lim Limits) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(lim.ExprBytes * 2), // the rewrite lengthens it
		cel.Variable(windowVar, windowType),
		cel.Variable("reading.value", cel.DoubleType), cel.Variable("reading.type", cel.StringType),
		cel.Variable("reading.seq", cel.IntType), cel.Variable("reading.time", cel.TimestampType),
		cel.Variable("device.id", cel.StringType), cel.Variable("device.class", cel.StringType),
		cel.Variable("device.org", cel.StringType), cel.Variable("device.labels", cel.MapType(cel.StringType, cel.StringType)),
		cel.Function("count",
			cel.Overload("count_window_duration", []*cel.Type{windowType, cel.DurationType}, cel.IntType,
				cel.BinaryBinding(func(w, d ref.Val) ref.Val { return agg("count", w, "", d.(types.Duration).Duration) })),
			cel.Overload("count_window_type_duration", []*cel.Type{windowType, cel.StringType, cel.DurationType}, cel.IntType,
				cel.FunctionBinding(func(a ...ref.Val) ref.Val {
					return agg("count", a[0], string(a[1].(types.String)), a[2].(types.Duration).Duration)
				}))),
		cel.Function("last", cel.Overload("last_window_type", []*cel.Type{windowType, cel.StringType}, cel.DoubleType,
			cel.BinaryBinding(func(w, t ref.Val) ref.Val {
				v, ok := w.(windowVal)
				if !ok {
					return types.NewErr("last: no window")
				}
				x, ok := v.dw.last(string(t.(types.String)), v.now)
				if !ok {
					return types.NewErr("last(%s): no reading of that type yet", t)
				}
				return types.Double(x)
			}))),
	}
	for _, fn := range []string{"mean", "min", "max"} {
		opts = append(opts, cel.Function(fn, cel.Overload(fn+"_window_type_duration",
			[]*cel.Type{windowType, cel.StringType, cel.DurationType}, cel.DoubleType,
			cel.FunctionBinding(func(a ...ref.Val) ref.Val {
				return agg(fn, a[0], string(a[1].(types.String)), a[2].(types.Duration).Duration)
			}))))
	}
	return cel.NewEnv(opts...)
}
