package ledger

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// TestDisclosure: an agreement acts on a sealed reading only once its
// owner discloses that one value's secret; a wrong secret, a secret of
// another reading, a disclosure by someone else and a secret on a
// plaintext reading are refused, and the replica replaying the blocks
// reaches the same app hashes (the disclosure is deterministic).
func TestDisclosure(t *testing.T) {
	home, acme := mustKey(t, identity.Ed25519), mustKey(t, identity.Ed25519)
	g := GenesisState{Orgs: []GenesisOrg{{ID: "home", Admins: []string{home.ID()}}, {ID: "acme", Admins: []string{acme.ID()}}},
		Balances: []GenesisBalance{{Account: "org:home", Amount: 1000}}}
	r := &recorder{c: newChainConfig(t, g, Config{}, []*identity.Key{mustKey(t, identity.Ed25519)})}
	sensor := r.register(home, "home", "sensor")
	gw := r.register(home, "home", record.ClassGateway)
	cooler := r.register(acme, "acme", "actuator")
	r.must(home, "", &record.AgreementDeploy{Source: exampleAgreement(t, "thermostat"), Parties: map[string]string{"sensor": "device:" + sensor.ID(), "cooler": "device:" + cooler.ID(), "buyer": "org:home", "seller": "org:acme"}})
	r.must(acme, "", &record.AgreementAccept{ID: 1})

	// home's data key, version 1 (the disclosure does not depend on it:
	// the ledger checks the secret against the envelope's commitment).
	dk := mustKey(t, identity.Ed25519)
	pub, err := dk.HPKEPublicKey(identity.SuiteX25519)
	if err != nil {
		t.Fatal(err)
	}
	data := reading.DataKey{Version: 1, Suite: identity.SuiteX25519, Key: pub}

	// Two sealed readings (35 and 36 degrees) and a plaintext one, anchored.
	seal := func(seq uint64, v float64) []byte {
		s, err := reading.SealReading(reading.Reading{Seq: seq, Time: time.UnixMilli(1e12 + int64(seq)), ContentType: "temperature/celsius", Value: &v}, testChain, sensor.ID(), data)
		if err != nil {
			t.Fatal(err)
		}
		e, err := reading.Sign(sensor, sensor.ID(), s)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	authAt := r.c.height
	e1, e2 := seal(1, 35), seal(2, 36)
	v3 := 37.0
	e3, _ := reading.Sign(sensor, sensor.ID(), reading.Reading{Seq: 3, Time: time.UnixMilli(1e12 + 3), ContentType: "temperature/celsius", Value: &v3})
	h := rfc6962.DefaultHasher
	l1, l2, l3 := h.HashLeaf(reading.EntryBytes(authAt, 0, e1)), h.HashLeaf(reading.EntryBytes(authAt, 0, e2)), h.HashLeaf(reading.EntryBytes(authAt, 0, e3))
	l12 := h.HashChildren(l1, l2)
	r.must(gw, "", &record.DataAnchor{Size: 3, Root: h.HashChildren(l12, l3)})
	ev := func(i uint64, env []byte, secret []byte) *record.AgreementCall {
		incl := map[uint64][][]byte{0: {l2, l3}, 1: {l1, l3}, 2: {l12}}[i]
		return &record.AgreementCall{ID: 1, Transition: "hot", Reading: &record.ReadingEvidence{Gateway: gw.ID(), Index: i, Size: 3, Envelope: env, AuthHeight: authAt, Inclusion: incl, Secret: secret}}
	}
	secretOf := func(env []byte) []byte {
		e, err := reading.Decode(env)
		if err != nil {
			t.Fatal(err)
		}
		s, err := reading.SealedSecret(dk, testChain, e.Readings[0])
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1, s2 := secretOf(e1), secretOf(e2)

	r.want(record.CodeInvalid, "only once its owner discloses it", acme, "", ev(0, e1, nil))
	r.want(record.CodeInvalid, "disclosure refused", home, "", ev(0, e1, s2)) // the secret of another reading
	wrong := bytes.Clone(s1)
	wrong[31] ^= 1
	r.want(record.CodeInvalid, "disclosure refused", home, "", ev(0, e1, wrong))
	r.want(record.CodeUnauthorized, "may disclose", acme, "", ev(0, e1, s1)) // not the owner
	r.want(record.CodeInvalid, "is not sealed", home, "", ev(2, e3, s1))     // a secret on a plaintext reading
	if cmds, _ := r.c.view().Commands(cooler.ID(), 0, 10); len(cmds) != 0 {
		t.Fatalf("commands before the disclosure: %+v", cmds)
	}
	r.must(home, "", ev(0, e1, s1)) // the owner discloses reading 1: 35 > 30, hot
	cmds, err := r.c.view().Commands(cooler.ID(), 0, 10)
	if err != nil || len(cmds) != 1 || string(cmds[0].Payload) != "on" {
		t.Fatalf("commands after the disclosure: %+v, %v", cmds, err)
	}
	// The device itself may disclose its reading too: reading 2 passes
	// the disclosure, and the agreement then decides (cooling already).
	c2 := ev(1, e2, s2)
	c2.Transition = "cool"
	code, log := r.do(sensor, "", c2)
	if strings.Contains(log, "disclos") || code == record.CodeOK {
		t.Fatalf("the device's disclosure of 36 degrees to cool: code %v (%s); want the agreement's refusal", code, log)
	}
	t.Logf("cool at 36 degrees: %v (%s)", code, log)
}
