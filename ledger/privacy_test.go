package ledger

import (
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// TestReadRule runs the read rule (State.MayRead) for every kind of
// caller against one device: who may read its values, and why.
func TestReadRule(t *testing.T) {
	home, acme, stranger := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	g := GenesisState{Orgs: []GenesisOrg{{ID: "home", Admins: []string{home.ID()}}, {ID: "acme", Admins: []string{acme.ID()}}}}
	c := newChain(t, g, "")
	dev := c.register(home, "home", identity.Ed25519)
	sibling := c.register(home, "home", identity.Ed25519)
	alien := c.register(acme, "acme", identity.Ed25519)

	check := func(name, caller string, want bool, as string) {
		t.Helper()
		st := c.view()
		d, err := st.Device(dev.ID())
		if err != nil {
			t.Fatal(err)
		}
		acc, err := st.MayRead(caller, d)
		if err != nil {
			t.Fatal(err)
		}
		if acc.Allowed != want || acc.As != as {
			t.Errorf("%s: MayRead = %v as %q, want %v as %q", name, acc.Allowed, acc.As, want, as)
		}
	}
	check("the device", dev.ID(), true, "device")
	check("its admin", home.ID(), true, "admin")
	check("a device of its organisation", sibling.ID(), false, "")
	check("another organisation's admin", acme.ID(), false, "")
	check("another organisation's device", alien.ID(), false, "")
	check("a stranger", stranger.ID(), false, "")
	check("anonymous", "", false, "")

	// A read grant to acme lets acme's admin and devices read.
	c.must(home, "", &record.GrantAdd{Grantor: "org:home", Subject: "org:acme", Action: record.ActionRead, Resource: "device:" + dev.ID(), Quota: 5})
	check("grantee organisation's admin", acme.ID(), true, "grant")
	check("grantee organisation's device", alien.ID(), true, "grant")
	check("a stranger, after the grant", stranger.ID(), false, "")
	st := c.view()
	d, _ := st.Device(dev.ID())
	if acc, _ := st.MayRead(acme.ID(), d); acc.Grant == nil || acc.Grant.Quota != 5 {
		t.Errorf("the grant's quota is not reported: %+v", acc.Grant)
	}
	c.must(home, "", &record.GrantRevoke{ID: 1})
	check("grantee after revocation", acme.ID(), false, "")

	// Public marks: by device, then by class.
	c.must(home, "", &record.OrgPolicy{Org: "home", Public: []string{"device:" + dev.ID()}})
	check("anyone, device public", "", true, "public")
	check("a stranger, device public", stranger.ID(), true, "public")
	c.must(home, "", &record.OrgPolicy{Org: "home"})
	check("anyone, mark removed", "", false, "")
	c.must(home, "", &record.DeviceUpdate{Device: dev.ID(), Class: "thermo"})
	c.must(home, "", &record.OrgPolicy{Org: "home", Public: []string{"class:thermo"}})
	check("anyone, class public", "", true, "public")
	// Another organisation cannot mark home's devices public.
	c.want(record.CodeUnauthorized, acme, "", &record.OrgPolicy{Org: "home", Public: []string{"device:" + dev.ID()}})
}

// TestPrivacyTxs covers the policy, data key and erasure records: who may
// set them, what the ledger keeps, and that bad input is refused.
func TestPrivacyTxs(t *testing.T) {
	home, acme := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	g := GenesisState{Orgs: []GenesisOrg{{ID: "home", Admins: []string{home.ID()}}, {ID: "acme", Admins: []string{acme.ID()}}}}
	c := newChain(t, g, "")
	dev := c.register(home, "home", identity.Ed25519)
	alien := c.register(acme, "acme", identity.Ed25519)

	c.must(home, "", &record.OrgPolicy{Org: "home", Retention: 3600})
	p, err := c.view().Policy("home")
	if err != nil || p.Retention != 3600 || p.Signer != home.ID() {
		t.Fatalf("policy = %+v, %v", p, err)
	}
	for name, m := range map[string]record.Msg{
		"short retention": &record.OrgPolicy{Org: "home", Retention: 10},
		"unsorted marks":  &record.OrgPolicy{Org: "home", Public: []string{"device:" + dev.ID(), "class:a"}},
		"bad mark":        &record.OrgPolicy{Org: "home", Public: []string{"everyone"}},
		"empty data key":  &record.OrgDataKey{Org: "home", Suite: 1},
		"no suite":        &record.OrgDataKey{Org: "home", Key: []byte{1}},
		"erase backwards": &record.DataErase{Org: "home", Device: dev.ID(), From: 10, To: 5},
		"erase negative":  &record.DataErase{Org: "home", Device: dev.ID(), From: -1},
		"erase not a did": &record.DataErase{Org: "home", Device: "sensor"},
	} {
		code, log := c.do(home, "", m)
		if code == record.CodeOK {
			t.Errorf("%s: accepted", name)
		} else if code != record.CodeInvalid {
			t.Errorf("%s: code %v (%s), want invalid", name, code, log)
		}
	}

	c.must(home, "", &record.OrgDataKey{Org: "home", Suite: 1, Key: []byte("key-1")})
	c.must(home, "", &record.OrgDataKey{Org: "home", Suite: 1, Key: []byte("key-2")})
	st := c.view()
	if k, err := st.DataKey("home", 0); err != nil || k.Version != 2 || string(k.Key) != "key-2" {
		t.Fatalf("current data key = %+v, %v", k, err)
	}
	if k, err := st.DataKey("home", 1); err != nil || string(k.Key) != "key-1" {
		t.Fatalf("data key 1 = %+v, %v (old versions stay, so old readings open)", k, err)
	}
	if _, err := st.DataKey("acme", 0); err == nil {
		t.Fatal("acme has a data key it never published")
	}
	c.want(record.CodeUnauthorized, acme, "", &record.OrgDataKey{Org: "home", Suite: 1, Key: []byte("evil")})

	c.must(home, "", &record.DataErase{Org: "home", Device: dev.ID(), From: 1000, To: 2000, Reason: "subject request"})
	c.must(home, "", &record.DataErase{Org: "home", Device: dev.ID()})
	c.want(record.CodeUnauthorized, acme, "", &record.DataErase{Org: "home", Device: dev.ID()})
	c.want(record.CodeUnauthorized, home, "", &record.DataErase{Org: "home", Device: alien.ID()})
	es, err := c.view().Erasures(0, 10)
	if err != nil || len(es) != 2 {
		t.Fatalf("erasures = %+v, %v", es, err)
	}
	if e := es[0]; e.Seq != 1 || e.Device != dev.ID() || !e.Covers(1000) || e.Covers(2000) || e.Signer != home.ID() || len(e.Tx) != 32 {
		t.Errorf("erasure 1 = %+v", e)
	}
	if e := es[1]; !e.Covers(0) || !e.Covers(1<<50) {
		t.Errorf("erasure 2 (no bounds) = %+v", e)
	}
	if later, _ := c.view().Erasures(1, 10); len(later) != 1 || later[0].Seq != 2 {
		t.Errorf("erasures after 1 = %+v", later)
	}
}
