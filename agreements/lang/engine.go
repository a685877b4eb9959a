package lang

import (
	"slices"
	"sort"
)

// Value is the value of a state variable; which field holds it depends on
// the variable's type (ints and credits: Int).
type Value struct {
	Int  int64  `cbor:"1,keyasint,omitempty" json:"int,omitempty"`
	Str  string `cbor:"2,keyasint,omitempty" json:"str,omitempty"`
	Bool bool   `cbor:"3,keyasint,omitempty" json:"bool,omitempty"`
}

// GrantRef is a grant an agreement added, by its name in the document.
type GrantRef struct {
	Name string `cbor:"1,keyasint" json:"name"`
	ID   uint64 `cbor:"2,keyasint" json:"id"`
}

// Instance is the state of a deployed agreement. Slices follow the
// document's order (state variables, parties), so encoding it is
// deterministic.
type Instance struct {
	Vars     []Value    `cbor:"1,keyasint" json:"vars"`
	Deposits []uint64   `cbor:"2,keyasint,omitempty" json:"deposits,omitempty"` // escrowed credits per party
	LastSeq  []uint64   `cbor:"3,keyasint,omitempty" json:"last_seq,omitempty"` // last reading seq consumed per party
	Grants   []GrantRef `cbor:"4,keyasint,omitempty" json:"grants,omitempty"`
	Finished bool       `cbor:"5,keyasint,omitempty" json:"finished,omitempty"`
}

// Escrow is the total held in escrow.
func (in *Instance) Escrow() uint64 {
	var s uint64
	for _, d := range in.Deposits {
		s += d
	}
	return s
}

// SetGrant records the id the ledger gave a named grant.
func (in *Instance) SetGrant(name string, id uint64) {
	for i := range in.Grants {
		if in.Grants[i].Name == name {
			in.Grants[i].ID = id
			return
		}
	}
	in.Grants = append(in.Grants, GrantRef{Name: name, ID: id})
	sort.Slice(in.Grants, func(i, j int) bool { return in.Grants[i].Name < in.Grants[j].Name })
}

// Action is an effect for the ledger to apply, in order. Principals are
// "device:<did>", "org:<id>"; the agreement's escrow is "agreement:<id>".
type Action struct {
	Kind     EffectKind `cbor:"1,keyasint" json:"kind"`
	From     string     `cbor:"2,keyasint,omitempty" json:"from,omitempty"`
	To       string     `cbor:"3,keyasint,omitempty" json:"to,omitempty"`
	Amount   uint64     `cbor:"4,keyasint,omitempty" json:"amount,omitempty"`
	Device   string     `cbor:"5,keyasint,omitempty" json:"device,omitempty"`
	Payload  []byte     `cbor:"6,keyasint,omitempty" json:"payload,omitempty"`
	Reason   string     `cbor:"7,keyasint,omitempty" json:"reason,omitempty"`
	Grant    *GrantSpec `cbor:"8,keyasint,omitempty" json:"grant,omitempty"`
	RevokeID uint64     `cbor:"9,keyasint,omitempty" json:"revoke_id,omitempty"`
	Event    string     `cbor:"10,keyasint,omitempty" json:"event,omitempty"`
	Value    int64      `cbor:"11,keyasint,omitempty" json:"value,omitempty"`
}

// GrantSpec is a grant to add. Replaces is the id of the grant of the same
// name that this one replaces (to revoke), or 0.
type GrantSpec struct {
	Name     string `cbor:"1,keyasint" json:"name"`
	Grantor  string `cbor:"2,keyasint" json:"grantor"`
	Subject  string `cbor:"3,keyasint" json:"subject"`
	Action   string `cbor:"4,keyasint" json:"action"`
	Resource string `cbor:"5,keyasint" json:"resource"`
	Expiry   int64  `cbor:"6,keyasint,omitempty" json:"expiry,omitempty"`
	Replaces uint64 `cbor:"7,keyasint,omitempty" json:"replaces,omitempty"`
}

func (in *Instance) Clone() *Instance {
	return &Instance{
		Vars: slices.Clone(in.Vars), Deposits: slices.Clone(in.Deposits), LastSeq: slices.Clone(in.LastSeq),
		Grants: slices.Clone(in.Grants), Finished: in.Finished,
	}
}
