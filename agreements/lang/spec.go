package lang

import (
	"fmt"
	"strings"
)

// Type is the type of a state variable or call argument.
type Type string

// Types of state variables and arguments. Credits are integers that may
// never be negative; in CEL they are ints.
const (
	TypeInt     Type = "int"
	TypeBool    Type = "bool"
	TypeString  Type = "string"
	TypeCredits Type = "credits"
)

func (t Type) valid() bool {
	switch t {
	case TypeInt, TypeBool, TypeString, TypeCredits:
		return true
	}
	return false
}

// PartyKind says what a party is.
type PartyKind string

// Party kinds.
const (
	PartyDevice PartyKind = "device"
	PartyOrg    PartyKind = "org"
)

// TriggerKind says what fires a transition.
type TriggerKind string

// Trigger kinds.
const (
	TriggerCall    TriggerKind = "call"    // a party's signed agreement.call
	TriggerReading TriggerKind = "reading" // a proven reading of a device party
	TriggerHeight  TriggerKind = "height"  // a block height (every N blocks, or at a state variable's height)
	TriggerEvent   TriggerKind = "event"   // another agreement's emitted event
)

// EffectKind names an effect.
type EffectKind string

// Effect kinds.
const (
	EffectSet      EffectKind = "set"
	EffectTransfer EffectKind = "transfer"
	EffectEscrow   EffectKind = "escrow"
	EffectRelease  EffectKind = "release"
	EffectCommand  EffectKind = "command"
	EffectGrant    EffectKind = "grant"
	EffectRevoke   EffectKind = "revoke"
	EffectSuspend  EffectKind = "suspend"
	EffectResume   EffectKind = "resume"
	EffectEmit     EffectKind = "emit"
	EffectFinish   EffectKind = "finish"
)

// Anyone in a call trigger lets any signer call the transition.
const Anyone = "anyone"

// Pos is a position in the source document (1-based; 0 when unknown).
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

func (p Pos) String() string {
	if p.Line == 0 {
		return ""
	}
	if p.Column == 0 {
		return fmt.Sprintf("line %d", p.Line)
	}
	return fmt.Sprintf("line %d, column %d", p.Line, p.Column)
}

// Error is a problem with an agreement, located in its source.
type Error struct {
	Pos   Pos    `json:"pos"`
	Field string `json:"field"` // e.g. "transitions.cool.when"
	Msg   string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	if s := e.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func ErrAt(p Pos, field, format string, args ...any) *Error {
	return &Error{Pos: p, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Doc is a parsed agreement document.
type Doc struct {
	Name        string
	Description string
	Parties     []Party
	State       []Var
	Transitions []Transition
}

// Party is a named participant. ID is empty when the party is bound at
// deploy time.
type Party struct {
	Name string
	Kind PartyKind
	ID   string
	Pos  Pos
}

// Principal is the party's ledger principal, "device:<did>" or "org:<id>".
func (p Party) Principal() string { return string(p.Kind) + ":" + p.ID }

// Var is a state variable or a call argument. Init is a CEL expression
// (state only; empty: the type's zero value).
type Var struct {
	Name string
	Type Type
	Init *Expr
	Pos  Pos
}

// Expr is a CEL expression in the document.
type Expr struct {
	Src   string
	Pos   Pos
	Field string
}

// Transition is a named state change.
type Transition struct {
	Name    string
	Pos     Pos
	Trigger Trigger
	Args    []Var // call triggers only
	Guard   *Expr // nil: always
	Effects []Effect
}

// Trigger says what fires a transition.
type Trigger struct {
	Kind TriggerKind
	Pos  Pos
	// Call: party names that may call (or Anyone).
	Callers []string
	// Reading: the device party whose proven readings fire the
	// transition, optionally only readings of one content type.
	Device      string
	ContentType string
	// Height: every Every blocks from deployment, or at the height held in
	// the int state variable At.
	Every int64
	At    string
	// Event: the event Event emitted by agreement Agreement (0: this one).
	Agreement uint64
	Event     string
}

// Effect is one thing a transition does. When, if set, is a bool CEL
// expression: the effect is skipped when it is false.
type Effect struct {
	Kind EffectKind
	Pos  Pos
	When *Expr

	Set []Assign // set

	From   string // transfer, escrow: party
	To     string // transfer, release: party; command: device party
	Of     string // release: whose deposit (empty: deposits in party order)
	Amount *Expr  // transfer, escrow, release (nil on release: everything)

	Payload *Expr // command: string
	Device  string
	Reason  string // suspend, resume

	Name     string // grant, revoke: the grant's name within the agreement
	Grantor  string // grant: org or device party that grants
	Subject  string // grant: party
	Action   string // grant: e.g. read
	Resource string // grant: party whose resource it is
	Path     string // grant: resource path, e.g. readings
	Until    *Expr  // grant: last height (int); nil: no expiry

	Event string // emit
	Value *Expr  // emit: int
}

// Assign sets a state variable to an expression's value.
type Assign struct {
	Var  string
	Expr *Expr
}

// Limits bound what a document may hold and what execution may cost.
type Limits struct {
	SourceBytes   int    // document size
	Parties       int    // parties
	Vars          int    // state variables
	Transitions   int    // transitions
	Effects       int    // effects per transition
	ExprBytes     int    // one CEL expression
	StringBytes   int    // a string state variable or argument
	ExprCost      uint64 // CEL cost units per expression (estimated at deploy, enforced at run)
	TransitionCEL uint64 // CEL cost units per transition, all expressions together
}

// DefaultLimits are the limits the ledger uses.
func DefaultLimits() Limits {
	return Limits{
		SourceBytes: 32 << 10, Parties: 16, Vars: 64, Transitions: 64, Effects: 32,
		ExprBytes: 1024, StringBytes: 256, ExprCost: 1000, TransitionCEL: 10_000,
	}
}
