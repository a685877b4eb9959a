package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	corestore "cosmossdk.io/core/store"
	"github.com/thingnet/thingnet/record"
)

var marker = []byte{1}

func validatorKey(pub []byte) []byte { return []byte(record.PrefixValidator + hex.EncodeToString(pub)) }
func adminKey(admin, org string) []byte {
	return []byte(record.PrefixAdmin + admin + "/" + org)
}
func grantIdxKey(subject, action, resource string, id uint64) []byte {
	k := []byte(record.PrefixGrantIdx + subject + "\x00" + action + "\x00" + resource + "\x00")
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
	if err := record.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decoding %q: %w", key, err)
	}
	return true, nil
}

// ErrNotFound is returned by the typed getters for a missing record.
var ErrNotFound = errors.New("not found")

// Org returns an organisation.
func (s *State) Org(id string) (*record.Org, error) {
	var o record.Org
	ok, err := s.get(record.OrgKey(id), &o)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("organisation %q: %w", id, ErrNotFound)
	}
	return &o, nil
}

// Device returns a device.
func (s *State) Device(id string) (*record.Device, error) {
	var d record.Device
	ok, err := s.get(record.DeviceKey(id), &d)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("device %q: %w", id, ErrNotFound)
	}
	return &d, nil
}

// Grant returns a grant (in force, expired or revoked).
func (s *State) Grant(id uint64) (*record.Grant, error) {
	var g record.Grant
	ok, err := s.get(record.GrantKey(id), &g)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("grant %d: %w", id, ErrNotFound)
	}
	return &g, nil
}

// Anchor returns a gateway's latest anchor.
func (s *State) Anchor(gateway string) (*record.Anchor, error) {
	var a record.Anchor
	ok, err := s.get(record.AnchorKey(gateway), &a)
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
func (s *State) AnchorCovering(gateway string, index uint64) (*record.Anchor, error) {
	var a record.Anchor
	found, err := s.firstFrom(record.AnchorAtKey(gateway, index+1), []byte(record.PrefixAnchorAt+gateway+"/"), &a)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("no anchor of gateway %q covers entry %d yet: %w", gateway, index, ErrNotFound)
	}
	return &a, nil
}

// firstFrom decodes into v the first record at or after key start under
// prefix; false if there is none.
func (s *State) firstFrom(start, prefix []byte, v any) (bool, error) {
	found := false
	err := s.scan(start, prefixEnd(prefix), func(_, b []byte) (bool, error) {
		found = true
		return false, record.Unmarshal(b, v)
	})
	return found && err == nil, err
}

// Nonce returns the last nonce used by signer (0 if none).
func (s *State) Nonce(signer string) (uint64, error) {
	return s.u64(record.NonceKey(signer))
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
	b, err := s.r.Get([]byte(record.KeyChainID))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// History returns up to limit events of a device starting at seq from (1-based).
func (s *State) History(device string, from uint64, limit int) ([]record.Event, error) {
	if from == 0 {
		from = 1
	}
	start := record.HistoryKey(device, from)
	end := prefixEnd([]byte(record.PrefixHistory + device + "/"))
	var out []record.Event
	err := s.scan(start, end, func(_, v []byte) (bool, error) {
		var e record.Event
		if err := record.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("decoding history of %s: %w", device, err)
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}

// Orgs lists organisations in id order, starting after the id `after`.
func (s *State) Orgs(after string, limit int) ([]record.Org, error) {
	var out []record.Org
	err := s.scan(after1(record.PrefixOrg, after), prefixEnd([]byte(record.PrefixOrg)), func(_, v []byte) (bool, error) {
		var o record.Org
		if err := record.Unmarshal(v, &o); err != nil {
			return false, err
		}
		out = append(out, o)
		return len(out) < limit, nil
	})
	return out, err
}

// Devices lists devices in id order (optionally of one org), starting after `after`.
func (s *State) Devices(org, after string, limit int) ([]record.Device, error) {
	var out []record.Device
	err := s.scan(after1(record.PrefixDevice, after), prefixEnd([]byte(record.PrefixDevice)), func(_, v []byte) (bool, error) {
		var d record.Device
		if err := record.Unmarshal(v, &d); err != nil {
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
	p := []byte(record.PrefixAdmin + id + "/")
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
func (s *State) Grants(f GrantFilter) ([]record.Grant, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []record.Grant
	keep := func(g *record.Grant) bool {
		return g.ID > f.After && g.ActiveAt(s.Height+1) &&
			(f.Subject == "" || g.Subject == f.Subject) &&
			(f.Action == "" || g.Action == f.Action) &&
			(f.Resource == "" || g.Resource == f.Resource)
	}
	if f.Subject == "" {
		start := record.GrantKey(f.After + 1)
		err := s.scan(start, prefixEnd([]byte(record.PrefixGrant)), func(_, v []byte) (bool, error) {
			var g record.Grant
			if err := record.Unmarshal(v, &g); err != nil {
				return false, err
			}
			if keep(&g) {
				out = append(out, g)
			}
			return len(out) < f.Limit, nil
		})
		return out, err
	}
	p := []byte(record.PrefixGrantIdx + f.Subject + "\x00")
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
	g, err := s.grantFor(subject, action, resources, h)
	return g != nil, err
}

// grantFor returns the first grant of subject for action on one of
// resources (tried in order) in force at height h, or nil.
func (s *State) grantFor(subject, action string, resources []string, h int64) (*record.Grant, error) {
	for _, r := range resources {
		p := []byte(record.PrefixGrantIdx + subject + "\x00" + action + "\x00" + r + "\x00")
		var found *record.Grant
		err := s.scan(p, prefixEnd(p), func(k, _ []byte) (bool, error) {
			g, err := s.Grant(binary.BigEndian.Uint64(k[len(k)-8:]))
			if err != nil {
				return false, err
			}
			if g.ActiveAt(h) {
				found = g
			}
			return found == nil, nil
		})
		if err != nil || found != nil {
			return found, err
		}
	}
	return nil, nil
}

// Validators returns the validator set as the application tracks it, in key order.
func (s *State) Validators() ([]record.Validator, error) {
	var out []record.Validator
	err := s.scan([]byte(record.PrefixValidator), prefixEnd([]byte(record.PrefixValidator)), func(_, v []byte) (bool, error) {
		var val record.Validator
		if err := record.Unmarshal(v, &val); err != nil {
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
