package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/thingnet/thingnet/agreements/lang"
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
	PrefixAgreement    = "ag/" // ag/<id u64 BE> -> Agreement
	PrefixAgreementLog = "ah/" // ah/<id u64 BE><seq u64 BE> -> AgreementEvent
	PrefixCommand      = "cm/" // cm/<device did>/<id u64 BE> -> Command
	PrefixSchedule     = "at/" // at/<height u64 BE><agreement u64 BE><trigger u16 BE> -> marker
	PrefixSubscription = "ae/" // ae/<source u64 BE><event>\x00<agreement u64 BE><trigger u16 BE> -> marker
	KeyAgreementSeq    = "m/agreementseq"
	KeyCommandSeq      = "m/commandseq"
)

// Agreement statuses.
const (
	AgreementProposed = "proposed" // waiting for parties to accept
	AgreementActive   = "active"
	AgreementFinished = "finished"
)

// AgreementKey and the functions below return state keys, for proofs.
func AgreementKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(PrefixAgreement), id)
}

func AgreementEventKey(id, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte(PrefixAgreementLog), id), seq)
}

func CommandKey(device string, id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(PrefixCommand+device+"/"), id)
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
	if len(m.Parties) > lang.DefaultLimits().Parties {
		return fmt.Errorf("%d party bindings; at most %d", len(m.Parties), lang.DefaultLimits().Parties)
	}
	for _, k := range sortedKeys(m.Parties) {
		p, err := ParsePrincipal(m.Parties[k])
		if err != nil || (p.Type != "org" && p.Type != "device") {
			return fmt.Errorf("party %s: %q is not org:<id> or device:<did>", k, m.Parties[k])
		}
	}
	if _, err := lang.Parse(m.Source); err != nil {
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
// entry reading.EntryBytes(AuthHeight, ReceivedAt, Envelope): the envelope
// alone for entries of layout 1 (AuthHeight 0), else with the height at
// which the gateway authenticated it (layout 2) and the time it received
// it (layout 3).
type ReadingEvidence struct {
	Gateway    string   `cbor:"1,keyasint" json:"gateway"`
	Index      uint64   `cbor:"2,keyasint" json:"index"`
	Size       uint64   `cbor:"3,keyasint" json:"size"`
	Envelope   []byte   `cbor:"4,keyasint" json:"envelope"`
	Inclusion  [][]byte `cbor:"5,keyasint,omitempty" json:"inclusion,omitempty"`
	Item       uint32   `cbor:"6,keyasint,omitempty" json:"item,omitempty"`        // which reading of a batch
	AuthHeight int64    `cbor:"7,keyasint,omitempty" json:"auth_height,omitempty"` // from the log entry; 0 for layout 1
	// Secret discloses a sealed reading (reading.Sealed): the 32-byte
	// secret of that one value, which the ledger checks against the
	// sealed value's commitment and opens it with (docs/privacy.md,
	// "Disclosing one sealed reading"). Empty for a plaintext reading.
	Secret []byte `cbor:"8,keyasint,omitempty" json:"secret,omitempty"`
	// ReceivedAt is the gateway's receive time from the log entry (Unix
	// ms); 0 for layouts 1 and 2.
	ReceivedAt int64 `cbor:"9,keyasint,omitempty" json:"received_at,omitempty"`
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
		if r.ReceivedAt < 0 || (r.ReceivedAt != 0 && r.AuthHeight == 0) {
			return fmt.Errorf("reading receive time %d: want 0, or with an authentication height (entry layout 3)", r.ReceivedAt)
		}
		if len(r.Secret) != 0 && len(r.Secret) != reading.SecretSize {
			return fmt.Errorf("disclosed secret is %d bytes; want %d", len(r.Secret), reading.SecretSize)
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
	ID       uint64           `cbor:"1,keyasint" json:"id"`
	Name     string           `cbor:"2,keyasint" json:"name"`
	Source   []byte           `cbor:"3,keyasint" json:"-"`
	Parties  []AgreementParty `cbor:"4,keyasint" json:"parties"` // document order
	Deployer string           `cbor:"5,keyasint" json:"deployer"`
	Deployed int64            `cbor:"6,keyasint" json:"deployed"`
	Status   string           `cbor:"7,keyasint" json:"status"`
	State    *lang.Instance   `cbor:"8,keyasint" json:"-"`
	History  uint64           `cbor:"9,keyasint" json:"history"` // number of history entries
	Updated  int64            `cbor:"10,keyasint" json:"updated"`
	Hash     []byte           `cbor:"11,keyasint" json:"hash"` // SHA-256 of Source
}

// AgreementParty is a party as bound at deploy, and whether it accepted.
type AgreementParty struct {
	Name      string `cbor:"1,keyasint" json:"name"`
	Principal string `cbor:"2,keyasint" json:"principal"`
	Accepted  bool   `cbor:"3,keyasint,omitempty" json:"accepted"`
}

// AgreementEvent is one entry of an agreement's history.
type AgreementEvent struct {
	Seq        uint64        `cbor:"1,keyasint" json:"seq"`
	Height     int64         `cbor:"2,keyasint" json:"height"`
	Tx         []byte        `cbor:"3,keyasint,omitempty" json:"tx,omitempty"`
	Signer     string        `cbor:"4,keyasint,omitempty" json:"signer,omitempty"`
	Trigger    string        `cbor:"5,keyasint" json:"trigger"` // deploy, accept, call, reading, height, event
	Transition string        `cbor:"6,keyasint,omitempty" json:"transition,omitempty"`
	Actions    []lang.Action `cbor:"7,keyasint,omitempty" json:"actions,omitempty"`
	Cost       uint64        `cbor:"8,keyasint,omitempty" json:"cel_cost,omitempty"`
	Error      string        `cbor:"9,keyasint,omitempty" json:"error,omitempty"` // a height or event transition that failed
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
