package ledger

import (
	"strings"
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// An admin sets desired configurations of a class, a label and a device;
// versions only go up; another organisation's admin cannot set them, a
// "manage" grantee can until the grant is revoked, and the record says by
// what right it was set. A class-wide change is one record whatever the
// number of devices.
func TestConfigSet(t *testing.T) {
	a, b := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	c := newChain(t, GenesisState{Orgs: []GenesisOrg{{ID: "org-a", Admins: []string{a.ID()}}, {ID: "org-b", Admins: []string{b.ID()}}}}, "")
	dev := c.register(a, "org-a", identity.Ed25519)
	c.must(a, "", &record.DeviceUpdate{Device: dev.ID(), Labels: map[string]string{"site": "north"}})

	c.must(a, "", &record.ConfigSet{Org: "org-a", Scope: record.ConfigClass, Name: "sensor", Version: 1, Settings: map[string]any{"wake_s": 30, "mode": "eco"}})
	c.must(a, "", &record.ConfigSet{Org: "org-a", Scope: record.ConfigLabel, Name: "site=north", Version: 1, Settings: map[string]any{"mode": "full"}})
	c.must(a, "", &record.ConfigSet{Org: "org-a", Scope: record.ConfigDevice, Name: dev.ID(), Version: 4, Settings: map[string]any{"wake_s": 60}})
	c.want(record.CodeConflict, a, "", &record.ConfigSet{Org: "org-a", Scope: record.ConfigClass, Name: "sensor", Version: 1, Settings: map[string]any{"wake_s": 5}})
	c.want(record.CodeInvalid, a, "", &record.ConfigSet{Org: "org-a", Scope: record.ConfigClass, Name: "sensor", Version: 2, Settings: map[string]any{"Bad Name": 5}})
	c.want(record.CodeInvalid, a, "", &record.ConfigSet{Org: "org-a", Scope: record.ConfigClass, Name: "sensor", Version: 2, Settings: map[string]any{"blob": strings.Repeat("x", 300)}})

	des, err := c.view().Desired(dev.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(des.Layers) != 3 || des.Settings["wake_s"] != int64(60) || des.Settings["mode"] != "full" {
		t.Fatalf("desired = %+v; want class, label, device merged with the device winning", des)
	}

	// Tenancy: org-b's admin can neither set org-a's class nor its device.
	for _, m := range []*record.ConfigSet{
		{Org: "org-a", Scope: record.ConfigClass, Name: "sensor", Version: 9, Settings: map[string]any{"wake_s": 1}},
		{Org: "org-a", Scope: record.ConfigDevice, Name: dev.ID(), Version: 9},
		{Org: "org-b", Scope: record.ConfigDevice, Name: dev.ID(), Version: 9},
	} {
		if got, log := c.do(b, "", m); got != record.CodeUnauthorized && got != record.CodeInvalid {
			t.Errorf("%s/%s by org-b: %v (%s); want refused", m.Scope, m.Name, got, log)
		}
	}
	// A device does not set configurations, not even its own.
	c.want(record.CodeUnauthorized, dev, "", &record.ConfigSet{Org: "org-a", Scope: record.ConfigDevice, Name: dev.ID(), Version: 9})

	// A manage grant on the organisation lets org-b's admin set the class.
	c.must(a, "", &record.GrantAdd{Grantor: "org:org-a", Subject: "org:org-b", Action: record.ActionManage, Resource: "org:org-a"})
	gs, _ := c.view().Grants(GrantFilter{Subject: "org:org-b"})
	c.must(b, "", &record.ConfigSet{Org: "org-a", Scope: record.ConfigClass, Name: "sensor", Version: 2, Settings: map[string]any{"wake_s": 10}})
	r, err := c.view().Config("org-a", record.ConfigClass, "sensor")
	if err != nil || r.Grant != gs[0].ID || r.Signer != b.ID() || r.Version != 2 {
		t.Fatalf("class config = %+v, %v; want set by %s through grant %d", r, err, b.ID(), gs[0].ID)
	}
	c.must(a, "", &record.GrantRevoke{ID: gs[0].ID})
	c.want(record.CodeUnauthorized, b, "", &record.ConfigSet{Org: "org-a", Scope: record.ConfigClass, Name: "sensor", Version: 3})
	// The class layer set through the revoked grant no longer applies.
	des, err = c.view().Desired(dev.ID())
	if err != nil || len(des.Refused) != 1 || des.Refused[0].Scope != record.ConfigClass || len(des.Layers) != 2 {
		t.Fatalf("desired after the revoke = %+v, %v; want the class layer refused", des, err)
	}

	h, err := c.view().ConfigHistory("org-a", record.ConfigClass, "sensor", 0, 10)
	if err != nil || len(h) != 2 || h[0].Version != 1 || h[1].Version != 2 {
		t.Fatalf("history = %+v, %v; want versions 1 and 2", h, err)
	}
}

// The ledger bytes of a class-wide change do not depend on the number of
// devices in the class.
func TestConfigBytesIndependentOfFleet(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	var sizes []int
	for _, n := range []int{1, 20} {
		c := newChain(t, orgGenesis(admin, "acme"), "")
		for range n {
			c.register(admin, "acme", identity.Ed25519)
		}
		before := stateBytes(t, c.view())
		c.must(admin, "", &record.ConfigSet{Org: "acme", Scope: record.ConfigClass, Name: "sensor", Version: 1, Settings: map[string]any{"wake_s": 30}})
		sizes = append(sizes, stateBytes(t, c.view())-before)
		t.Logf("%d devices: a class-wide change wrote %d bytes of state", n, sizes[len(sizes)-1])
	}
	if sizes[0] != sizes[1] {
		t.Errorf("a class-wide change wrote %d bytes of state with 1 device, %d with 20", sizes[0], sizes[1])
	}
}

// stateBytes sums the keys and values of a state.
func stateBytes(t *testing.T, st *State) int {
	n := 0
	if err := st.scan(nil, nil, func(k, v []byte) (bool, error) {
		n += len(k) + len(v)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}
