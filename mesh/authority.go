package mesh

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/mesh/message"
	"github.com/thingnet/thingnet/record"
)

// LedgerAuthority answers from a node's committed ledger state.
type LedgerAuthority struct {
	View  func() (*ledger.State, error)
	Chain func() string // the chain id (known once the node has started)
	Keys  *identity.DIDCache

	// Answers are cached for the height they were read at: a new block
	// empties the cache, so a revocation takes effect at once.
	mu      sync.Mutex
	height  int64
	devices map[string]*message.Device
	grants  map[string]bool
}

const maxCached = 100_000

// cached returns the state and the caches for its height.
func (a *LedgerAuthority) cached() (*ledger.State, error) {
	st, err := a.View()
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if st.Height != a.height || a.devices == nil || len(a.devices)+len(a.grants) > maxCached {
		a.height, a.devices, a.grants = st.Height, map[string]*message.Device{}, map[string]bool{}
	}
	a.mu.Unlock()
	return st, nil
}

// NewLedgerAuthority reads from view, a node's latest committed state.
func NewLedgerAuthority(view func() (*ledger.State, error), chainID func() string) *LedgerAuthority {
	return &LedgerAuthority{View: view, Chain: chainID, Keys: identity.NewDIDCache(100_000)}
}

// ChainID is the ledger's chain id.
func (a *LedgerAuthority) ChainID() string { return a.Chain() }

// Device looks a device up in the committed state.
func (a *LedgerAuthority) Device(id string) (*message.Device, error) {
	st, err := a.cached()
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	cd, ok := a.devices[id]
	ok = ok && a.height == st.Height
	a.mu.Unlock()
	if ok {
		return cd, nil
	}
	out, err := a.device(st, id)
	if err == nil {
		a.mu.Lock()
		if a.height == st.Height {
			a.devices[id] = out
		}
		a.mu.Unlock()
	}
	return out, err
}

func (a *LedgerAuthority) device(st *ledger.State, id string) (*message.Device, error) {
	d, err := st.Device(id)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", message.ErrUnknownSender, id)
	}
	if err != nil {
		return nil, err
	}
	key, err := a.Keys.Parse(d.Key)
	if err != nil {
		return nil, fmt.Errorf("device %s has an unreadable key: %w", id, err)
	}
	return &message.Device{ID: d.ID, Org: d.Org, Class: d.Class, Key: key, Active: d.Status == record.StatusActive,
		AttestedBy: d.AttestedBy, Labels: d.Labels}, nil
}

// Granted checks the grants in force at the next height: the sender
// device or its organisation must hold action on the resource, or (for a
// device) on the device's organisation.
func (a *LedgerAuthority) Granted(sender *message.Device, action, resource string) (bool, error) {
	st, err := a.cached()
	if err != nil {
		return false, err
	}
	key := sender.ID + "\x00" + action + "\x00" + resource
	a.mu.Lock()
	ok, hit := a.grants[key]
	hit = hit && a.height == st.Height
	a.mu.Unlock()
	if hit {
		return ok, nil
	}
	ok, err = a.granted(st, sender, action, resource)
	if err == nil {
		a.mu.Lock()
		if a.height == st.Height {
			a.grants[key] = ok
		}
		a.mu.Unlock()
	}
	return ok, err
}

func (a *LedgerAuthority) granted(st *ledger.State, sender *message.Device, action, resource string) (bool, error) {
	resources := []string{resource}
	if id, ok := strings.CutPrefix(resource, "device:"); ok {
		d, err := st.Device(id)
		if errors.Is(err, ledger.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		resources = append(resources, "org:"+d.Org)
	} else if owner, _, ok := strings.Cut(resource, "/"); ok {
		resources = append(resources, owner) // a grant on an org covers its topics
	}
	actions := []string{action}
	if action == message.KindMessage {
		actions = append(actions, message.KindCommand) // who may command may also message
	}
	for _, subject := range []string{"device:" + sender.ID, "org:" + sender.Org} {
		for _, act := range actions {
			ok, err := st.HasGrant(subject, act, resources, st.Height+1)
			if err != nil || ok {
				return ok, err
			}
		}
	}
	return false, nil
}
