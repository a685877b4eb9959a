package agreements

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/agreements/lang"
)

const (
	devA = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	devB = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
	devC = "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG"
)

func example(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "agreements", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustCompile(t *testing.T, src []byte, bind map[string]string) *Program {
	t.Helper()
	d, err := lang.Parse(src)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	p, err := Compile(d, bind, lang.DefaultLimits())
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}

func TestThermostatScenario(t *testing.T) {
	p := mustCompile(t, example(t, "thermostat"), map[string]string{"sensor": devA, "cooler": "device:" + devB, "buyer": "org:home", "seller": "acme"})
	in, err := p.Init(7, 10)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := p.Var(in, "threshold"); v.Int != 30 {
		t.Fatalf("threshold = %d", v.Int)
	}
	rd := func(seq uint64, v float64) *Input {
		return &Input{Agreement: 7, Height: 11, Signer: "did:key:someone", Reading: &Reading{Device: devA, Seq: seq, ContentType: "temperature/celsius", Value: v}}
	}
	// Too cool: the guard is false.
	if _, err := p.Fire(in, "hot", rd(1, 25)); !errors.Is(err, lang.ErrGuard) {
		t.Fatalf("cool reading: %v", err)
	}
	res, err := p.Fire(in, "hot", rd(2, 31.5))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Actions) != 2 || res.Actions[0].Kind != lang.EffectCommand || string(res.Actions[0].Payload) != "on" || res.Actions[0].Device != devB {
		t.Fatalf("actions: %+v", res.Actions)
	}
	if a := res.Actions[1]; a.Kind != lang.EffectTransfer || a.From != "org:home" || a.To != "org:acme" || a.Amount != 2 {
		t.Fatalf("transfer: %+v", a)
	}
	if res.Cost == 0 {
		t.Fatal("no CEL cost tracked")
	}
	in = res.Instance
	if m := p.StateMap(in); m["commands"] != int64(1) || m["cooling"] != true {
		t.Fatalf("state: %v", m)
	}
	// A replay of the same reading is refused.
	if _, err := p.Fire(in, "cool", rd(2, 20)); !errors.Is(err, ErrNoTrigger) {
		t.Fatalf("replay: %v", err)
	}
	// Another device's reading does not trigger.
	other := rd(3, 40)
	other.Reading.Device = devC
	if _, err := p.Fire(in, "hot", other); !errors.Is(err, ErrNoTrigger) {
		t.Fatalf("other device: %v", err)
	}
	res, err = p.Fire(in, "cool", rd(3, 27))
	if err != nil {
		t.Fatal(err)
	}
	in = res.Instance
	// Only the buyer may retune.
	if _, err := p.Fire(in, "retune", &Input{Agreement: 7, Height: 12, Args: map[string]any{"threshold": int64(25)}, SignerParties: []string{"seller"}}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("seller retunes: %v", err)
	}
	res, err = p.Fire(in, "retune", &Input{Agreement: 7, Height: 12, Args: map[string]any{"threshold": uint64(25)}, SignerParties: []string{"buyer"}})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := p.Var(res.Instance, "threshold"); v.Int != 25 {
		t.Fatalf("threshold = %d", v.Int)
	}
	if _, err := p.Fire(in, "retune", &Input{Agreement: 7, Height: 12, Args: map[string]any{"threshold": "x"}, SignerParties: []string{"buyer"}}); err == nil {
		t.Fatal("a string threshold was accepted")
	}
	if _, err := p.Fire(in, "retune", &Input{Agreement: 7, Height: 12, Args: map[string]any{"threshold": int64(1), "extra": true}, SignerParties: []string{"buyer"}}); err == nil {
		t.Fatal("an unknown argument was accepted")
	}
}

func TestChargingEscrowAndRefund(t *testing.T) {
	p := mustCompile(t, example(t, "charging"), map[string]string{"ev": devA, "charger": devB, "operator": "grid"})
	in, err := p.Init(1, 5)
	if err != nil {
		t.Fatal(err)
	}
	call := func(in *lang.Instance, name, party string, h int64, args map[string]any) (*Result, error) {
		return p.Fire(in, name, &Input{Agreement: 1, Height: h, SignerParties: []string{party}, Args: args})
	}
	res, err := call(in, "reserve", "ev", 6, map[string]any{"slot": int64(3), "price": int64(40), "blocks": int64(10)})
	if err != nil {
		t.Fatal(err)
	}
	if a := res.Actions[0]; a.Kind != lang.EffectEscrow || a.From != "device:"+devA || a.To != "agreement:1" || a.Amount != 40 {
		t.Fatalf("escrow action %+v", a)
	}
	if c := res.Actions[1]; string(c.Payload) != "reserve slot 3" {
		t.Fatalf("command %q", c.Payload)
	}
	reserved := res.Instance
	if reserved.Escrow() != 40 {
		t.Fatalf("escrow %d", reserved.Escrow())
	}
	if v, _ := p.Var(reserved, "deadline"); v.Int != 16 {
		t.Fatalf("deadline %d", v.Int)
	}
	if hs := p.HeightTriggers(); len(hs) != 1 || hs[0].At != "deadline" {
		t.Fatalf("height triggers %+v", hs)
	}
	// Delivered: released to the operator, finished.
	res, err = call(reserved, "delivered", "charger", 9, map[string]any{"kwh": int64(12)})
	if err != nil {
		t.Fatal(err)
	}
	if a := res.Actions[0]; a.Kind != lang.EffectRelease || a.To != "org:grid" || a.Amount != 40 || !res.Instance.Finished || res.Instance.Escrow() != 0 {
		t.Fatalf("delivered: %+v finished=%v", res.Actions, res.Instance.Finished)
	}
	if _, err := call(res.Instance, "delivered", "charger", 10, map[string]any{"kwh": int64(1)}); !errors.Is(err, ErrFinished) {
		t.Fatalf("after finish: %v", err)
	}
	// Not delivered: refunded at the deadline.
	res, err = p.Fire(reserved, "refund", &Input{Agreement: 1, Height: 16})
	if err != nil || res == nil {
		t.Fatalf("refund: %v %v", res, err)
	}
	if a := res.Actions[0]; a.Kind != lang.EffectRelease || a.To != "device:"+devA || a.Amount != 40 {
		t.Fatalf("refund: %+v", res.Actions)
	}
	// A height transition whose guard is false does nothing, without error.
	res, err = p.Fire(in, "refund", &Input{Agreement: 1, Height: 16})
	if err != nil || res != nil {
		t.Fatalf("idle refund: %v %v", res, err)
	}
}

func TestQuarantineWindow(t *testing.T) {
	p := mustCompile(t, example(t, "quarantine"), map[string]string{"gateway": devA, "suspect": devB, "owner": "home"})
	in, _ := p.Init(3, 1)
	report := func(h int64) []lang.Action {
		t.Helper()
		res, err := p.Fire(in, "report", &Input{Agreement: 3, Height: h, SignerParties: []string{"gateway"}})
		if err != nil {
			t.Fatalf("report at %d: %v", h, err)
		}
		in = res.Instance
		return res.Actions
	}
	report(10)
	report(15)
	report(40) // outside the 20-block window: a new window starts
	if v, _ := p.Var(in, "reports"); v.Int != 1 {
		t.Fatalf("reports after a new window = %d", v.Int)
	}
	report(41)
	acts := report(42)
	if len(acts) != 2 || acts[0].Kind != lang.EffectSuspend || acts[0].Device != devB || acts[1].Kind != lang.EffectEmit || acts[1].Value != 3 {
		t.Fatalf("third report in the window: %+v", acts)
	}
	if _, err := p.Fire(in, "report", &Input{Agreement: 3, Height: 43, SignerParties: []string{"gateway"}}); !errors.Is(err, lang.ErrGuard) {
		t.Fatalf("report after suspension: %v", err)
	}
	res, err := p.Fire(in, "release", &Input{Agreement: 3, Height: 44, SignerParties: []string{"owner"}})
	if err != nil || res.Actions[0].Kind != lang.EffectResume {
		t.Fatalf("release: %v %+v", err, res)
	}
}

func TestDataSharingGrants(t *testing.T) {
	p := mustCompile(t, example(t, "datasharing"), map[string]string{"owner": "farm", "reader": "lab", "sensor": devA})
	in, _ := p.Init(4, 1)
	res, err := p.Fire(in, "pay", &Input{Agreement: 4, Height: 20, SignerParties: []string{"reader"}, Args: map[string]any{"days": int64(2)}})
	if err != nil {
		t.Fatal(err)
	}
	if a := res.Actions[0]; a.Amount != 10 || a.From != "org:lab" || a.To != "org:farm" {
		t.Fatalf("payment %+v", a)
	}
	g := res.Actions[1].Grant
	if g == nil || g.Subject != "org:lab" || g.Grantor != "org:farm" || g.Resource != "device:"+devA+"/readings" || g.Expiry != 40 || g.Replaces != 0 {
		t.Fatalf("grant %+v", g)
	}
	res.Instance.SetGrant("access", 9)
	res, err = p.Fire(res.Instance, "pay", &Input{Agreement: 4, Height: 30, SignerParties: []string{"reader"}, Args: map[string]any{"days": int64(1)}})
	if err != nil {
		t.Fatal(err)
	}
	if g := res.Actions[1].Grant; g.Expiry != 50 || g.Replaces != 9 {
		t.Fatalf("renewal %+v", g)
	}
	res.Instance.SetGrant("access", 10)
	if r, err := p.Fire(res.Instance, "lapse", &Input{Agreement: 4, Height: 45}); err != nil || r != nil {
		t.Fatalf("lapse before expiry: %v %v", r, err)
	}
	r, err := p.Fire(res.Instance, "lapse", &Input{Agreement: 4, Height: 55})
	if err != nil || len(r.Actions) != 1 || r.Actions[0].RevokeID != 10 {
		t.Fatalf("lapse: %v %+v", err, r)
	}
}

func TestEvents(t *testing.T) {
	src := `
agreement: chain
parties: {a: org}
state: {seen: int}
transitions:
  ping:
    on: {call: a}
    do: [{emit: {event: pinged, value: "41 + 1"}}]
  pong:
    on: {event: pinged}
    when: event.value == 42
    do: [{set: {seen: state.seen + event.value}}]
`
	p := mustCompile(t, []byte(src), map[string]string{"a": "org:ao"})
	in, _ := p.Init(2, 1)
	res, err := p.Fire(in, "ping", &Input{Agreement: 2, Height: 2, SignerParties: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	ev := res.Actions[0]
	if ets := p.EventTriggers(); len(ets) != 1 || ets[0].Event != "pinged" {
		t.Fatalf("event triggers %+v", ets)
	}
	res, err = p.Fire(res.Instance, "pong", &Input{Agreement: 2, Height: 2, Event: &Event{Agreement: 2, Name: ev.Event, Value: ev.Value}})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := p.Var(res.Instance, "seen"); v.Int != 42 {
		t.Fatalf("seen %d", v.Int)
	}
	// Another agreement's event of the same name does not trigger "pong".
	if _, err := p.Fire(res.Instance, "pong", &Input{Agreement: 2, Height: 2, Event: &Event{Agreement: 5, Name: "pinged", Value: 42}}); !errors.Is(err, ErrNoTrigger) {
		t.Fatalf("foreign event: %v", err)
	}
}

// TestDeployErrors: malformed agreements are refused with the line and field.
func TestDeployErrors(t *testing.T) {
	base := `agreement: x
parties:
  a: org
  d: device
state:
  n: int
  s: string
transitions:
  t:
    on: {call: a}
`
	cases := []struct {
		name, src, want string
		line            int
	}{
		{"syntax", "agreement: x\nparties: [a\n", "syntax", 0},
		{"unknown key", "agreement: x\npartys: {a: org}\n", `unknown key "partys"`, 2},
		{"no transitions", "agreement: x\nparties: {a: org}\n", "no transitions", 1},
		{"bad type", "agreement: x\nparties: {a: org}\nstate: {n: float}\ntransitions: {}\n", `type "float"`, 3},
		{"unknown party", base + "    do: [{transfer: {from: a, to: b, amount: '1'}}]\n", `unknown party "b"`, 11},
		{"party kind", base + "    do: [{command: {to: a, payload: '\"x\"'}}]\n", `party "a" is a org; want a device`, 11},
		{"guard type", base + "    when: state.n + 1\n    do: [{finish: true}]\n", "the expression is int; want bool", 11},
		{"undeclared", base + "    when: state.m > 1\n    do: [{finish: true}]\n", "undeclared reference", 11},
		{"string into int", base + "    do: [{set: {n: state.s}}]\n", "want int", 11},
		{"reading in a call", base + "    when: reading.value > 1.0\n    do: [{finish: true}]\n", "undeclared reference", 11},
		{"clock", base + "    when: timestamp('2020-01-01T00:00:00Z') > timestamp('2019-01-01T00:00:00Z')\n    do: [{finish: true}]\n", "undeclared reference", 11},
		{"over cost", base + "    when: " + strings.Repeat("state.s.contains(state.s) && ", 2) + "true\n    do: [{finish: true}]\n", "may cost up to", 11},
		{"unknown effect", base + "    do: [{pay: {}}]\n", `unknown effect "pay"`, 11},
		{"revoke unknown", base + "    do: [{revoke: nope}]\n", `no grant effect is named "nope"`, 11},
		{"at non-int", base + "    do: [{finish: true}]\n  u:\n    on: {at: s}\n    do: [{finish: true}]\n", "at: takes an int", 13},
		{"args on height", base + "    do: [{finish: true}]\n  u:\n    on: {every: 3}\n    args: {x: int}\n    do: [{finish: true}]\n", "only call transitions take arguments", 14},
		{"two triggers", base + "    do: [{finish: true}]\n  u:\n    on: {every: 3, call: a}\n    do: [{finish: true}]\n", "one trigger", 13},
		{"duplicate key", base + "    do: [{finish: true}]\n  t:\n    on: {call: a}\n    do: [{finish: true}]\n", "appears twice", 12},
		{"map iteration", base + "    when: \"{'a': 1, 'b': 2}.exists(k, k == state.s)\"\n    do: [{finish: true}]\n", "only lists may be iterated", 11},
		{"list iteration is fine", base + "    when: \"[1, 2].exists(k, k == state.n) || true\"\n    do: [{finish: true}]\n  u:\n    on: {call: a}\n    when: state.n +\n    do: [{finish: true}]\n", "Syntax error", 0},
		{"reserved name", "agreement: x\nparties: {in: org}\ntransitions: {t: {on: {call: in}, do: [{finish: true}]}}\n", "reserved", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := lang.Parse([]byte(c.src))
			if err == nil {
				_, err = Compile(d, map[string]string{"a": "org:ao", "d": devA}, lang.DefaultLimits())
			}
			if err == nil {
				t.Fatal("accepted")
			}
			var e *lang.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q lacks %q", err, c.want)
			}
			if c.line != 0 && e.Pos.Line != c.line {
				t.Fatalf("error at line %d; want %d: %v", e.Pos.Line, c.line, err)
			}
		})
	}
}

func TestBindings(t *testing.T) {
	d, err := lang.Parse(example(t, "charging"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(d, map[string]string{"ev": devA, "charger": devB}, lang.DefaultLimits()); err == nil || !strings.Contains(err.Error(), "operator is not bound") {
		t.Fatalf("unbound party: %v", err)
	}
	if _, err := Compile(d, map[string]string{"ev": devA, "charger": devB, "operator": "org:grid", "extra": "org:x"}, lang.DefaultLimits()); err == nil {
		t.Fatal("an unknown binding was accepted")
	}
	if _, err := Compile(d, map[string]string{"ev": "org:grid", "charger": devB, "operator": "grid"}, lang.DefaultLimits()); err == nil {
		t.Fatal("an org bound to a device party was accepted")
	}
}

// TestDeterministicCost: the same input costs the same and gives the same
// state, run after run.
func TestDeterministicCost(t *testing.T) {
	p := mustCompile(t, example(t, "datasharing"), map[string]string{"owner": "farm", "reader": "lab", "sensor": devA})
	in, _ := p.Init(4, 1)
	var first *Result
	for range 20 {
		res, err := p.Fire(in, "pay", &Input{Agreement: 4, Height: 20, SignerParties: []string{"reader"}, Args: map[string]any{"days": int64(3)}})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = res
			continue
		}
		if res.Cost != first.Cost || p.StateMap(res.Instance)["paid_until"] != p.StateMap(first.Instance)["paid_until"] {
			t.Fatal("results differ between runs")
		}
	}
	if max := p.MaxCost("pay"); first.Cost > max {
		t.Fatalf("actual cost %d above the estimate %d", first.Cost, max)
	}
}

// TestJSON: a JSON document is YAML too, with positions in errors.
func TestJSON(t *testing.T) {
	src := `{
  "agreement": "counter",
  "parties": {"a": "org"},
  "state": {"n": "int"},
  "transitions": {
    "inc": {"on": {"call": "a"}, "when": "state.n < 10", "do": [{"set": {"n": "state.n + 1"}}]}
  }
}`
	p := mustCompile(t, []byte(src), map[string]string{"a": "ao"})
	in, _ := p.Init(1, 1)
	res, err := p.Fire(in, "inc", &Input{Agreement: 1, Height: 2, SignerParties: []string{"a"}})
	if err != nil || p.StateMap(res.Instance)["n"] != int64(1) {
		t.Fatalf("%v %v", res, err)
	}
	bad := strings.Replace(src, `"state.n < 10"`, `"state.n < 'ten'"`, 1)
	d, err := lang.Parse([]byte(bad))
	if err == nil {
		_, err = Compile(d, map[string]string{"a": "ao"}, lang.DefaultLimits())
	}
	var e *lang.Error
	if !errors.As(err, &e) || e.Pos.Line != 6 || e.Field != "transitions.inc.when" {
		t.Fatalf("error %v; want line 6, transitions.inc.when", err)
	}
}
