package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Privacy tx kinds (docs/privacy.md). Integrity is public, values are
// not: an organisation decides which of its devices' readings anyone may
// read (the public marks of its policy), how long gateways keep reading
// values (retention), which key devices seal confidential readings to (its
// data key), and may erase a device's readings.
const (
	KindOrgPolicy  = "org.policy"
	KindOrgDataKey = "org.datakey"
	KindDataErase  = "data.erase"

	// ActionRead is the grant action that lets a subject read a device's
	// reading values: resource "device:<did>/readings", "device:<did>" or
	// "org:<org>".
	ActionRead = "read"

	// MaxPublic is how many public marks a policy holds.
	MaxPublic = 256
	// MinRetention is the shortest retention period, in seconds.
	MinRetention = 60
	// MaxDataKey is the largest HPKE public key a data key holds (the
	// ML-KEM-768 + X25519 hybrid's is 1,216 bytes).
	MaxDataKey = 1600
)

const (
	PrefixPolicy  = "op/" // op/<org> -> Policy
	PrefixDataKey = "ok/" // ok/<org>/<version u64 BE> -> DataKey
	PrefixErasure = "er/" // er/<seq u64 BE> -> Erasure
	KeyEraseSeq   = "m/eraseseq"
)

// PolicyKey is the state key of an organisation's privacy policy.
func PolicyKey(org string) []byte { return []byte(PrefixPolicy + org) }

// DataKeyKey is the state key of one version of an organisation's data key.
func DataKeyKey(org string, version uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(PrefixDataKey+org+"/"), version)
}

// ErasureKey is the state key of an erasure record.
func ErasureKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte(PrefixErasure), seq) }

// Policy is an organisation's privacy policy as the ledger holds it.
type Policy struct {
	Org string `cbor:"1,keyasint" json:"org"`
	// Public lists what anyone may read: "device:<did>" or "class:<class>"
	// (every device of the organisation in that class), sorted.
	Public []string `cbor:"2,keyasint,omitempty" json:"public,omitempty"`
	// Retention is how long, in seconds from a reading's time, gateways
	// keep its value; 0 keeps it for ever.
	Retention uint64 `cbor:"3,keyasint,omitempty" json:"retention,omitempty"`
	// DataKey is the version of the current data key, 0 for none.
	DataKey uint64 `cbor:"4,keyasint,omitempty" json:"data_key,omitempty"`
	Height  int64  `cbor:"5,keyasint" json:"height"` // of the last change
	Signer  string `cbor:"6,keyasint" json:"signer"`
}

// IsPublic reports whether the policy marks the device (of class) public.
func (p *Policy) IsPublic(device, class string) bool {
	if p == nil {
		return false
	}
	_, ok := slices.BinarySearch(p.Public, "device:"+device)
	if !ok && class != "" {
		_, ok = slices.BinarySearch(p.Public, "class:"+class)
	}
	return ok
}

// DataKey is one version of an organisation's data key: the HPKE public
// key that its devices seal confidential readings to.
type DataKey struct {
	Org     string `cbor:"1,keyasint" json:"org"`
	Version uint64 `cbor:"2,keyasint" json:"version"`
	Suite   uint8  `cbor:"3,keyasint" json:"suite"` // identity.Suite
	Key     []byte `cbor:"4,keyasint" json:"key"`   // the suite's public key encoding
	Height  int64  `cbor:"5,keyasint" json:"height"`
	Signer  string `cbor:"6,keyasint" json:"signer"`
}

// Erasure records that an organisation erased a device's readings timed
// in [From, To) (Unix milliseconds; To 0 is no upper bound): every gateway
// destroys those values and keeps what the log's proofs need.
type Erasure struct {
	Seq    uint64 `cbor:"1,keyasint" json:"seq"`
	Org    string `cbor:"2,keyasint" json:"org"`
	Device string `cbor:"3,keyasint" json:"device"`
	From   int64  `cbor:"4,keyasint" json:"from"`
	To     int64  `cbor:"5,keyasint,omitempty" json:"to,omitempty"`
	Reason string `cbor:"6,keyasint,omitempty" json:"reason,omitempty"`
	Height int64  `cbor:"7,keyasint" json:"height"`
	Signer string `cbor:"8,keyasint" json:"signer"`
	Tx     []byte `cbor:"9,keyasint" json:"tx"`
}

// Covers reports whether a reading timed at ms (Unix milliseconds) lies in
// the erased range.
func (e *Erasure) Covers(ms int64) bool { return ms >= e.From && (e.To == 0 || ms < e.To) }

// OrgPolicy replaces an organisation's public marks and retention.
type OrgPolicy struct {
	Org       string   `cbor:"1,keyasint"`
	Public    []string `cbor:"2,keyasint,omitempty"`
	Retention uint64   `cbor:"3,keyasint,omitempty"`
}

func (*OrgPolicy) Kind() string { return KindOrgPolicy }

func (m *OrgPolicy) ValidateBasic() error {
	if err := validateOrgID(m.Org); err != nil {
		return err
	}
	if len(m.Public) > MaxPublic {
		return fmt.Errorf("%d public marks; at most %d", len(m.Public), MaxPublic)
	}
	for i, p := range m.Public {
		if err := validatePublicMark(p); err != nil {
			return err
		}
		if i > 0 && m.Public[i-1] >= p {
			return fmt.Errorf("public marks must be sorted and distinct: %q follows %q", p, m.Public[i-1])
		}
	}
	if m.Retention != 0 && m.Retention < MinRetention {
		return fmt.Errorf("retention %d s is shorter than %d s (0 keeps values for ever)", m.Retention, MinRetention)
	}
	return nil
}

func validatePublicMark(p string) error {
	switch {
	case strings.HasPrefix(p, "device:"):
		if err := checkDIDSyntax(p[len("device:"):]); err != nil {
			return fmt.Errorf("public mark %q: %w", p, err)
		}
	case strings.HasPrefix(p, "class:"):
		c := p[len("class:"):]
		if c == "" {
			return fmt.Errorf("public mark %q names no class", p)
		}
		if err := validateText("class", c, 64); err != nil {
			return fmt.Errorf("public mark %q: %w", p, err)
		}
	default:
		return fmt.Errorf("public mark %q: want device:<did> or class:<class>", p)
	}
	return nil
}

// OrgDataKey publishes a new version of an organisation's data key.
type OrgDataKey struct {
	Org   string `cbor:"1,keyasint"`
	Suite uint8  `cbor:"2,keyasint"`
	Key   []byte `cbor:"3,keyasint"`
}

func (*OrgDataKey) Kind() string { return KindOrgDataKey }

func (m *OrgDataKey) ValidateBasic() error {
	if err := validateOrgID(m.Org); err != nil {
		return err
	}
	if m.Suite == 0 {
		return errors.New("data key: suite is missing")
	}
	if len(m.Key) == 0 || len(m.Key) > MaxDataKey {
		return fmt.Errorf("data key is %d bytes, want 1 to %d", len(m.Key), MaxDataKey)
	}
	return nil
}

// DataErase erases a device's readings timed in [From, To).
type DataErase struct {
	Org    string `cbor:"1,keyasint"`
	Device string `cbor:"2,keyasint"`
	From   int64  `cbor:"3,keyasint,omitempty"`
	To     int64  `cbor:"4,keyasint,omitempty"`
	Reason string `cbor:"5,keyasint,omitempty"`
}

func (*DataErase) Kind() string { return KindDataErase }

func (m *DataErase) ValidateBasic() error {
	if err := validateOrgID(m.Org); err != nil {
		return err
	}
	if err := checkDIDSyntax(m.Device); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	if m.From < 0 || m.To < 0 {
		return errors.New("erase: from and to are Unix milliseconds, not negative")
	}
	if m.To != 0 && m.To <= m.From {
		return fmt.Errorf("erase: to (%d) must be after from (%d), or 0 for no bound", m.To, m.From)
	}
	return validateText("reason", m.Reason, 256)
}
