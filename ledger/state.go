package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	corestore "cosmossdk.io/core/store"
)

// Key layout of the state tree. Every record a device or auditor may need to
// check lives under one key, so it has an inclusion (or absence) proof
// against the app hash. docs/protocol.md lists the same layout.
const (
	prefixOrg       = "o/" // o/<org> -> Org
	prefixAdmin     = "a/" // a/<admin did>/<org> -> marker (orgs an admin administers)
	prefixDevice    = "d/" // d/<device did> -> Device
	prefixHistory   = "h/" // h/<device did>/<seq u64 BE> -> Event
	prefixGrant     = "g/" // g/<id u64 BE> -> Grant
	prefixGrantIdx  = "s/" // s/<subject>\x00<action>\x00<resource>\x00<id u64 BE> -> marker (grants in force)
	prefixNonce     = "n/" // n/<signer> -> u64 BE last nonce
	prefixValidator = "v/" // v/<hex pubkey> -> Validator
	prefixAnchor    = "l/" // l/<gateway did> -> Anchor (latest)
	prefixAnchorAt  = "L/" // L/<gateway did>/<size u64 BE> -> Anchor (every anchor)
	keyChainID      = "m/chain"
	keyGrantSeq     = "m/grantseq"
	keyValSeq       = "m/valseq"
)

var marker = []byte{1}

// OrgKey and the functions below return state keys, for proofs.
func OrgKey(id string) []byte       { return []byte(prefixOrg + id) }
func DeviceKey(id string) []byte    { return []byte(prefixDevice + id) }
func GrantKey(id uint64) []byte     { return binary.BigEndian.AppendUint64([]byte(prefixGrant), id) }
func NonceKey(signer string) []byte { return []byte(prefixNonce + signer) }
func HistoryKey(device string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixHistory+device+"/"), seq)
}
func AnchorKey(gateway string) []byte { return []byte(prefixAnchor + gateway) }
func AnchorAtKey(gateway string, size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixAnchorAt+gateway+"/"), size)
}
func validatorKey(pub []byte) []byte { return []byte(prefixValidator + hex.EncodeToString(pub)) }
func adminKey(admin, org string) []byte {
	return []byte(prefixAdmin + admin + "/" + org)
}
func grantIdxKey(subject, action, resource string, id uint64) []byte {
	k := []byte(prefixGrantIdx + subject + "\x00" + action + "\x00" + resource + "\x00")
	return binary.BigEndian.AppendUint64(k, id)
}

// reader is the read side of an IAVL tree (mutable working tree or an
// immutable committed version).
type reader interface {
	Get(key []byte) ([]byte, error)
	Iterator(start, end []byte, ascending bool) (corestore.Iterator, error)
}

// writer is the write side of the working tree.
type writer interface {
	reader
	Set(key, value []byte) (bool, error)
	Remove(key []byte) ([]byte, bool, error)
}

// State reads typed records from one version of the tree.
type State struct {
	r      reader
	Height int64 // the height this state is the result of
}

func (s *State) get(key []byte, v any) (bool, error) {
	b, err := s.r.Get(key)
	if err != nil {
		return false, fmt.Errorf("reading %q: %w", key, err)
	}
	if b == nil {
		return false, nil
	}
	if err := Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decoding %q: %w", key, err)
	}
	return true, nil
}

// ErrNotFound is returned by the typed getters for a missing record.
var ErrNotFound = errors.New("not found")

// Org returns an organisation.
func (s *State) Org(id string) (*Org, error) {
	var o Org
	ok, err := s.get(OrgKey(id), &o)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("organisation %q: %w", id, ErrNotFound)
	}
	return &o, nil
}

// Device returns a device.
func (s *State) Device(id string) (*Device, error) {
	var d Device
	ok, err := s.get(DeviceKey(id), &d)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("device %q: %w", id, ErrNotFound)
	}
	return &d, nil
}

// Grant returns a grant (in force, expired or revoked).
func (s *State) Grant(id uint64) (*Grant, error) {
	var g Grant
	ok, err := s.get(GrantKey(id), &g)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("grant %d: %w", id, ErrNotFound)
	}
	return &g, nil
}

// Anchor returns a gateway's latest anchor.
func (s *State) Anchor(gateway string) (*Anchor, error) {
	var a Anchor
	ok, err := s.get(AnchorKey(gateway), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("anchor of gateway %q: %w", gateway, ErrNotFound)
	}
	return &a, nil
}

// AnchorCovering returns the first anchor of a gateway's log whose size is
// above index (the anchor that first covered entry index).
func (s *State) AnchorCovering(gateway string, index uint64) (*Anchor, error) {
	p := []byte(prefixAnchorAt + gateway + "/")
	var found *Anchor
	err := s.scan(AnchorAtKey(gateway, index+1), prefixEnd(p), func(_, v []byte) (bool, error) {
		var a Anchor
		if err := Unmarshal(v, &a); err != nil {
			return false, err
		}
		found = &a
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("no anchor of gateway %q covers entry %d yet: %w", gateway, index, ErrNotFound)
	}
	return found, nil
}

// Nonce returns the last nonce used by signer (0 if none).
func (s *State) Nonce(signer string) (uint64, error) {
	return s.u64(NonceKey(signer))
}

func (s *State) u64(key []byte) (uint64, error) {
	b, err := s.r.Get(key)
	if err != nil {
		return 0, fmt.Errorf("reading %q: %w", key, err)
	}
	if b == nil {
		return 0, nil
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("state key %q holds %d bytes; want 8", key, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// ChainID returns the chain id recorded at genesis.
func (s *State) ChainID() (string, error) {
	b, err := s.r.Get([]byte(keyChainID))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// History returns up to limit events of a device starting at seq from (1-based).
func (s *State) History(device string, from uint64, limit int) ([]Event, error) {
	if from == 0 {
		from = 1
	}
	start := HistoryKey(device, from)
	end := prefixEnd([]byte(prefixHistory + device + "/"))
	var out []Event
	err := s.scan(start, end, func(_, v []byte) (bool, error) {
		var e Event
		if err := Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("decoding history of %s: %w", device, err)
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}

// Orgs lists organisations in id order, starting after the id `after`.
func (s *State) Orgs(after string, limit int) ([]Org, error) {
	var out []Org
	err := s.scan(after1(prefixOrg, after), prefixEnd([]byte(prefixOrg)), func(_, v []byte) (bool, error) {
		var o Org
		if err := Unmarshal(v, &o); err != nil {
			return false, err
		}
		out = append(out, o)
		return len(out) < limit, nil
	})
	return out, err
}

// Devices lists devices in id order (optionally of one org), starting after `after`.
func (s *State) Devices(org, after string, limit int) ([]Device, error) {
	var out []Device
	err := s.scan(after1(prefixDevice, after), prefixEnd([]byte(prefixDevice)), func(_, v []byte) (bool, error) {
		var d Device
		if err := Unmarshal(v, &d); err != nil {
			return false, err
		}
		if org == "" || d.Org == org {
			out = append(out, d)
		}
		return len(out) < limit, nil
	})
	return out, err
}

// AdminOrgs lists the organisations of which id is an admin, sorted.
func (s *State) AdminOrgs(id string) ([]string, error) {
	p := []byte(prefixAdmin + id + "/")
	var out []string
	err := s.scan(p, prefixEnd(p), func(k, _ []byte) (bool, error) {
		out = append(out, string(k[len(p):]))
		return true, nil
	})
	return out, err
}

// GrantFilter selects grants in force. Empty fields match anything; Subject
// is required for the index, otherwise all grants are scanned.
type GrantFilter struct {
	Subject, Action, Resource string
	After                     uint64 // grant ids above this
	Limit                     int
}

// Grants lists grants in force at this state's height that match f, in id order.
func (s *State) Grants(f GrantFilter) ([]Grant, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []Grant
	keep := func(g *Grant) bool {
		return g.ID > f.After && g.ActiveAt(s.Height+1) &&
			(f.Subject == "" || g.Subject == f.Subject) &&
			(f.Action == "" || g.Action == f.Action) &&
			(f.Resource == "" || g.Resource == f.Resource)
	}
	if f.Subject == "" {
		start := GrantKey(f.After + 1)
		err := s.scan(start, prefixEnd([]byte(prefixGrant)), func(_, v []byte) (bool, error) {
			var g Grant
			if err := Unmarshal(v, &g); err != nil {
				return false, err
			}
			if keep(&g) {
				out = append(out, g)
			}
			return len(out) < f.Limit, nil
		})
		return out, err
	}
	p := []byte(prefixGrantIdx + f.Subject + "\x00")
	if f.Action != "" {
		p = append(p, f.Action+"\x00"...)
	}
	err := s.scan(p, prefixEnd(p), func(k, _ []byte) (bool, error) {
		id := binary.BigEndian.Uint64(k[len(k)-8:])
		g, err := s.Grant(id)
		if err != nil {
			return false, err
		}
		if keep(g) {
			out = append(out, *g)
		}
		return true, nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, err
}

// HasGrant reports whether subject holds a grant in force for action on
// resource, at height h. A grant on "device:X" covers "device:X/anything";
// a grant on "org:O" covers O's own resources and O's devices (owners passed in).
func (s *State) HasGrant(subject, action string, resources []string, h int64) (bool, error) {
	for _, r := range resources {
		p := []byte(prefixGrantIdx + subject + "\x00" + action + "\x00" + r + "\x00")
		found := false
		err := s.scan(p, prefixEnd(p), func(k, _ []byte) (bool, error) {
			g, err := s.Grant(binary.BigEndian.Uint64(k[len(k)-8:]))
			if err != nil {
				return false, err
			}
			found = g.ActiveAt(h)
			return !found, nil
		})
		if err != nil || found {
			return found, err
		}
	}
	return false, nil
}

// Validators returns the validator set as the application tracks it, in key order.
func (s *State) Validators() ([]Validator, error) {
	var out []Validator
	err := s.scan([]byte(prefixValidator), prefixEnd([]byte(prefixValidator)), func(_, v []byte) (bool, error) {
		var val Validator
		if err := Unmarshal(v, &val); err != nil {
			return false, err
		}
		out = append(out, val)
		return true, nil
	})
	return out, err
}

// scan iterates keys in [start, end) in order until fn returns false.
func (s *State) scan(start, end []byte, fn func(k, v []byte) (bool, error)) error {
	it, err := s.r.Iterator(start, end, true)
	if err != nil {
		return fmt.Errorf("iterating state: %w", err)
	}
	defer it.Close()
	for ; it.Valid(); it.Next() {
		more, err := fn(it.Key(), it.Value())
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	return it.Error()
}

// prefixEnd returns the smallest key above every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// after1 returns the first key strictly after prefix+after ("" = the prefix itself).
func after1(prefix, after string) []byte {
	if after == "" {
		return []byte(prefix)
	}
	return append([]byte(prefix+after), 0)
}
