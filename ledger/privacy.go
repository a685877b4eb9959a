package ledger

import (
	"fmt"
	"strconv"

	"github.com/thingnet/thingnet/record"
)

// Privacy: an organisation's policy (public marks, retention), its data
// keys and erasures (record/privacy.go, docs/privacy.md). Who may read
// what is the rule book's (MayRead in rules.go).

// Policy returns an organisation's privacy policy; an organisation that
// never set one has the zero policy (nothing public, values kept).
func (s *State) Policy(org string) (*record.Policy, error) {
	var p record.Policy
	ok, err := s.get(record.PolicyKey(org), &p)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &record.Policy{Org: org}, nil
	}
	return &p, nil
}

// DataKey returns version v of an organisation's data key; v 0 is the
// current one.
func (s *State) DataKey(org string, v uint64) (*record.DataKey, error) {
	if v == 0 {
		p, err := s.Policy(org)
		if err != nil {
			return nil, err
		}
		if p.DataKey == 0 {
			return nil, fmt.Errorf("organisation %q has published no data key (thingnet org datakey): %w", org, ErrNotFound)
		}
		v = p.DataKey
	}
	var k record.DataKey
	ok, err := s.get(record.DataKeyKey(org, v), &k)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("organisation %q data key version %d: %w", org, v, ErrNotFound)
	}
	return &k, nil
}

// Erasures returns up to limit erasure records with a seq after `after`,
// in order.
func (s *State) Erasures(after uint64, limit int) ([]record.Erasure, error) {
	start := record.ErasureKey(after + 1)
	end := prefixEnd([]byte(record.PrefixErasure))
	var out []record.Erasure
	err := s.scan(start, end, func(_, v []byte) (bool, error) {
		var e record.Erasure
		if err := record.Unmarshal(v, &e); err != nil {
			return false, err
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}

// Erasure returns erasure record seq.
func (s *State) Erasure(seq uint64) (*record.Erasure, error) {
	var e record.Erasure
	ok, err := s.get(record.ErasureKey(seq), &e)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("erasure %d: %w", seq, ErrNotFound)
	}
	return &e, nil
}

func (x *txExec) orgPolicy(m *record.OrgPolicy) error {
	if _, err := x.adminOrg(m.Org); err != nil {
		return err
	}
	p, err := x.st.Policy(m.Org)
	if err != nil {
		return err
	}
	p.Public, p.Retention, p.Height, p.Signer = m.Public, m.Retention, x.height, x.tx.Signer
	x.buf.set(record.PolicyKey(m.Org), p)
	x.emit("org", "id", m.Org, "action", m.Kind(), "retention", strconv.FormatUint(m.Retention, 10), "public", strconv.Itoa(len(m.Public)))
	return nil
}

func (x *txExec) orgDataKey(m *record.OrgDataKey) error {
	if _, err := x.adminOrg(m.Org); err != nil {
		return err
	}
	p, err := x.st.Policy(m.Org)
	if err != nil {
		return err
	}
	p.DataKey++
	p.Height, p.Signer = x.height, x.tx.Signer
	x.buf.set(record.DataKeyKey(m.Org, p.DataKey), &record.DataKey{Org: m.Org, Version: p.DataKey, Suite: m.Suite, Key: m.Key, Height: x.height, Signer: x.tx.Signer})
	x.buf.set(record.PolicyKey(m.Org), p)
	x.emit("org", "id", m.Org, "action", m.Kind(), "version", strconv.FormatUint(p.DataKey, 10))
	return nil
}

func (x *txExec) dataErase(m *record.DataErase) error {
	if _, err := x.adminOrg(m.Org); err != nil {
		return err
	}
	d, err := x.st.Device(m.Device)
	if err != nil {
		return notFound(err)
	}
	if d.Org != m.Org {
		return record.Errf(record.CodeUnauthorized, "device %s belongs to %q, not %q", m.Device, d.Org, m.Org)
	}
	seq, err := x.ops().nextSeq(record.KeyEraseSeq)
	if err != nil {
		return err
	}
	e := &record.Erasure{Seq: seq, Org: m.Org, Device: m.Device, From: m.From, To: m.To, Reason: m.Reason,
		Height: x.height, Signer: x.tx.Signer, Tx: x.tx.Hash[:]}
	x.buf.set(record.ErasureKey(seq), e)
	x.emit("erasure", "seq", strconv.FormatUint(seq, 10), "org", m.Org, "device", m.Device)
	return nil
}

// ErasureCount is the number of erasures recorded on the ledger.
func (s *State) ErasureCount() (uint64, error) { return s.u64([]byte(record.KeyEraseSeq)) }
