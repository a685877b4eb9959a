package ledger

import (
	"fmt"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// ruleEnv is one fresh chain on which a rule case runs, through a tx or
// through an agreement's effect.
type ruleEnv struct {
	c          *chainT
	home, acme *identity.Key // the admins of organisations home and acme
	dev, alien *identity.Key // a device of home, a device of acme
	parties    map[string]string
	actor      string // who changes a device's status: org:acme (tx) or agreement:1
	grant      uint64 // revoke cases: the grant to revoke
}

// speaker is the key that speaks for a party in a tx.
func (e *ruleEnv) speaker(party string) *identity.Key {
	return map[string]*identity.Key{"owner": e.home, "reader": e.acme, "dev": e.dev, "alien": e.alien}[party]
}

// grantTo has home grant e.actor action on a party's resource; expiry
// is a height (0: none).
func (e *ruleEnv) grantTo(action, on string, expiry int64) uint64 {
	e.c.t.Helper()
	e.c.must(e.home, "", &record.GrantAdd{Grantor: "org:home", Subject: e.actor, Action: action, Resource: e.parties[on], Expiry: expiry})
	id, err := e.c.view().u64([]byte(record.KeyGrantSeq))
	if err != nil {
		e.c.t.Fatal(err)
	}
	return id
}

// ruleChange is what a case tries: add a grant (grantor, subject, on are
// party names), revoke the grant added first, or set a device's status.
type ruleChange struct {
	kind                 string // "grant", "revoke", "suspend", "resume"
	grantor, subject, on string
	until                *int64 // grant: its last height relative to the height it is added at; nil: none
}

func rel(d int64) *int64 { return &d }

// effect is the agreement effect that makes the change.
func (ch ruleChange) effect() string {
	switch ch.kind {
	case "grant":
		until := ""
		if ch.until != nil {
			until = fmt.Sprintf(`, until: "height + %d"`, *ch.until)
			if *ch.until < 0 {
				until = fmt.Sprintf(`, until: "height - %d"`, -*ch.until)
			}
		}
		return fmt.Sprintf("grant: {name: g, grantor: %s, to: %s, action: read, on: %s%s}", ch.grantor, ch.subject, ch.on, until)
	case "revoke":
		return "revoke: g"
	default:
		return fmt.Sprintf("%s: {device: %s, reason: rule book}", ch.kind, ch.on)
	}
}

// tx is the transaction that makes the change, and its signer.
func (ch ruleChange) tx(e *ruleEnv) (*identity.Key, record.Msg) {
	switch ch.kind {
	case "grant":
		var expiry int64
		if ch.until != nil {
			expiry = e.c.height + 1 + *ch.until
		}
		return e.speaker(ch.grantor), &record.GrantAdd{Grantor: e.parties[ch.grantor], Subject: e.parties[ch.subject], Action: "read", Resource: e.parties[ch.on], Expiry: expiry}
	case "revoke":
		return e.home, &record.GrantRevoke{ID: e.grant}
	case "suspend":
		return e.acme, record.NewDeviceStatus(strings.TrimPrefix(e.parties[ch.on], "device:"), record.StatusSuspended, "rule book")
	default:
		return e.acme, record.NewDeviceStatus(strings.TrimPrefix(e.parties[ch.on], "device:"), record.StatusActive, "rule book")
	}
}

const ruleAgreement = `
agreement: rulebook
parties: {owner: org, reader: org, dev: device, alien: device}
transitions:
  give:
    on: {call: owner}
    do:
      - grant: {name: g, grantor: owner, to: reader, action: read, on: dev}
  change:
    on: {call: owner}
    do:
      - %s
`

// newRuleEnv starts a chain for a case; with viaAgreement it deploys the
// agreement that makes ch (id 1), accepted by every party.
func newRuleEnv(t *testing.T, ch ruleChange, viaAgreement bool) *ruleEnv {
	e := &ruleEnv{home: mustKey(t, identity.Ed25519), acme: mustKey(t, identity.Ed25519)}
	g := GenesisState{Orgs: []GenesisOrg{{ID: "home", Admins: []string{e.home.ID()}}, {ID: "acme", Admins: []string{e.acme.ID()}}}}
	e.c = newChain(t, g, "")
	e.dev = e.c.register(e.home, "home", identity.Ed25519)
	e.alien = e.c.register(e.acme, "acme", identity.Ed25519)
	e.parties = map[string]string{"owner": "org:home", "reader": "org:acme", "dev": "device:" + e.dev.ID(), "alien": "device:" + e.alien.ID()}
	e.actor = "org:acme"
	if viaAgreement {
		e.c.must(e.home, "", &record.AgreementDeploy{Source: fmt.Appendf(nil, ruleAgreement, ch.effect()), Parties: e.parties})
		e.c.must(e.acme, "", &record.AgreementAccept{ID: 1})
		e.actor = "agreement:1"
	}
	if ch.kind == "revoke" {
		if viaAgreement {
			e.c.must(e.home, "", &record.AgreementCall{ID: 1, Transition: "give"})
			id, err := e.c.view().u64([]byte(record.KeyGrantSeq))
			if err != nil {
				t.Fatal(err)
			}
			e.grant = id
		} else {
			e.c.must(e.home, "", &record.GrantAdd{Grantor: "org:home", Subject: "org:acme", Action: "read", Resource: e.parties["dev"]})
			e.grant = 1
		}
	}
	return e
}

// party names a principal by its party name, the same in every chain.
func (e *ruleEnv) party(principal string) string {
	for name, p := range e.parties {
		if p == principal {
			return name
		}
	}
	return principal
}

// outcome says what the change left: the read grants to acme not revoked
// (their grantor, resource and expiry), the status of home's device.
func (e *ruleEnv) outcome() string {
	e.c.t.Helper()
	st := e.c.view()
	n, err := st.u64([]byte(record.KeyGrantSeq))
	if err != nil {
		e.c.t.Fatal(err)
	}
	var b strings.Builder
	for id := uint64(1); id <= n; id++ {
		g, err := st.Grant(id)
		if err != nil {
			e.c.t.Fatal(err)
		}
		if g.Subject != "org:acme" || g.Action != "read" || g.Revoked != 0 {
			continue
		}
		exp := "none"
		if g.Expiry != 0 {
			exp = fmt.Sprintf("height%+d", g.Expiry-g.Created)
		}
		fmt.Fprintf(&b, "grant by %s on %s until %s; ", e.party(g.Grantor), e.party(g.Resource), exp)
	}
	d, err := st.Device(e.dev.ID())
	if err != nil {
		e.c.t.Fatal(err)
	}
	fmt.Fprintf(&b, "dev %s", d.Status)
	return b.String()
}

// TestRuleBook runs each authorization case through a tx and through an
// agreement's effect: both go through the rule book (rules.go), so both
// must have the same outcome (the same code, and the same grants and
// device status after it).
func TestRuleBook(t *testing.T) {
	manage := func(on string) func(*ruleEnv) {
		return func(e *ruleEnv) { e.grantTo(record.ActionManage, on, 0) }
	}
	cases := []struct {
		name   string
		change ruleChange
		setup  func(*ruleEnv)
		want   record.Code
		// done: the outcome already holds. A tx that would change nothing
		// is refused (want) so that its signer learns it; an agreement's
		// effect succeeds.
		done bool
	}{
		{name: "organisation grants on its device", change: ruleChange{kind: "grant", grantor: "owner", subject: "reader", on: "dev"}},
		{name: "organisation grants on itself", change: ruleChange{kind: "grant", grantor: "owner", subject: "reader", on: "owner"}},
		{name: "organisation grants on another's device", change: ruleChange{kind: "grant", grantor: "owner", subject: "reader", on: "alien"}, want: record.CodeUnauthorized},
		{name: "device grants on itself", change: ruleChange{kind: "grant", grantor: "dev", subject: "reader", on: "dev"}},
		{name: "device grants on its organisation", change: ruleChange{kind: "grant", grantor: "dev", subject: "reader", on: "owner"}, want: record.CodeUnauthorized},
		{name: "expiry before the current height", change: ruleChange{kind: "grant", grantor: "owner", subject: "reader", on: "dev", until: rel(-1)}, want: record.CodeInvalid},
		{name: "expiry at the current height", change: ruleChange{kind: "grant", grantor: "owner", subject: "reader", on: "dev", until: rel(0)}},
		{name: "expiry later", change: ruleChange{kind: "grant", grantor: "owner", subject: "reader", on: "dev", until: rel(10)}},

		{name: "suspend with manage on the device", change: ruleChange{kind: "suspend", on: "dev"}, setup: manage("dev")},
		{name: "suspend with manage on its organisation", change: ruleChange{kind: "suspend", on: "dev"}, setup: manage("owner")},
		{name: "suspend without a grant", change: ruleChange{kind: "suspend", on: "dev"}, want: record.CodeUnauthorized},
		{name: "suspend with command, not manage", change: ruleChange{kind: "suspend", on: "dev"}, want: record.CodeUnauthorized,
			setup: func(e *ruleEnv) { e.grantTo("command", "dev", 0) }},
		{name: "suspend with an expired manage grant", change: ruleChange{kind: "suspend", on: "dev"}, want: record.CodeUnauthorized,
			setup: func(e *ruleEnv) { e.grantTo(record.ActionManage, "dev", e.c.height+1); e.c.block() }},
		{name: "suspend with a revoked manage grant", change: ruleChange{kind: "suspend", on: "dev"}, want: record.CodeUnauthorized,
			setup: func(e *ruleEnv) {
				e.c.must(e.home, "", &record.GrantRevoke{ID: e.grantTo(record.ActionManage, "dev", 0)})
			}},
		{name: "suspend a revoked device", change: ruleChange{kind: "suspend", on: "dev"}, want: record.CodeConflict,
			setup: func(e *ruleEnv) {
				manage("dev")(e)
				e.c.must(e.home, "", record.NewDeviceStatus(e.dev.ID(), record.StatusRevoked, ""))
			}},
		{name: "resume a suspended device", change: ruleChange{kind: "resume", on: "dev"},
			setup: func(e *ruleEnv) {
				manage("dev")(e)
				e.c.must(e.home, "", record.NewDeviceStatus(e.dev.ID(), record.StatusSuspended, ""))
			}},
		{name: "suspend a suspended device", change: ruleChange{kind: "suspend", on: "dev"}, want: record.CodeConflict, done: true,
			setup: func(e *ruleEnv) {
				manage("dev")(e)
				e.c.must(e.home, "", record.NewDeviceStatus(e.dev.ID(), record.StatusSuspended, ""))
			}},
		{name: "resume an active device", change: ruleChange{kind: "resume", on: "dev"}, setup: manage("dev"), want: record.CodeConflict, done: true},

		{name: "revoke a grant", change: ruleChange{kind: "revoke"}},
		{name: "revoke a revoked grant", change: ruleChange{kind: "revoke"}, want: record.CodeConflict, done: true,
			setup: func(e *ruleEnv) { e.c.must(e.home, "", &record.GrantRevoke{ID: e.grant}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var outcomes [2]string
			for i, viaAgreement := range []bool{false, true} {
				e := newRuleEnv(t, tc.change, viaAgreement)
				if tc.setup != nil {
					tc.setup(e)
				}
				want, path := tc.want, "tx"
				var got record.Code
				var log string
				if viaAgreement {
					path = "agreement effect"
					if tc.done {
						want = record.CodeOK
					}
					got, log = e.c.do(e.home, "", &record.AgreementCall{ID: 1, Transition: "change"})
				} else {
					key, m := tc.change.tx(e)
					got, log = e.c.do(key, "", m)
				}
				if got != want {
					t.Fatalf("%s: code %v (%s); want %v", path, got, log, want)
				}
				outcomes[i] = e.outcome()
			}
			if outcomes[0] != outcomes[1] {
				t.Errorf("outcome through a tx: %s; through an agreement effect: %s", outcomes[0], outcomes[1])
			}
		})
	}
}

// TestRuleBookEdges: where the two copies of a rule that the rule book
// replaced disagreed, the rule book keeps the stricter answer.
func TestRuleBookEdges(t *testing.T) {
	// An until that evaluates to 0 would read as "no expiry" in a grant
	// effect: it is refused, never a grant that does not expire.
	t.Run("until 0", func(t *testing.T) {
		ch := ruleChange{kind: "grant", grantor: "owner", subject: "reader", on: "dev"}
		e := newRuleEnv(t, ch, true)
		src := fmt.Appendf(nil, ruleAgreement, `grant: {name: g, grantor: owner, to: reader, action: read, on: dev, until: "0"}`)
		e.c.must(e.home, "", &record.AgreementDeploy{Source: src, Parties: e.parties})
		e.c.must(e.acme, "", &record.AgreementAccept{ID: 2})
		if code, log := e.c.do(e.home, "", &record.AgreementCall{ID: 2, Transition: "change"}); code != record.CodeInvalid {
			t.Fatalf("until 0: code %v (%s); want %v", code, log, record.CodeInvalid)
		}
		if got := e.outcome(); got != "dev active" {
			t.Errorf("outcome %q; want no grant", got)
		}
	})
	// Who may act is decided before the state of what they act on: a
	// signer that may not revoke a grant is told so, revoked or not.
	t.Run("revoke a revoked grant of another", func(t *testing.T) {
		e := newRuleEnv(t, ruleChange{kind: "revoke"}, false)
		e.c.must(e.home, "", &record.GrantRevoke{ID: e.grant})
		e.c.want(record.CodeUnauthorized, e.acme, "", &record.GrantRevoke{ID: e.grant})
	})
}
