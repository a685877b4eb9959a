package ledger

import (
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// trustSource guards a reading on who signed it: a device's own reading
// or one a gateway attested for a sensor that cannot sign.
const trustSource = `agreement: trust-source
parties:
  sensor: device
  owner: org
state:
  signed: int
  by: string
transitions:
  signed:
    on: {reading: sensor, type: temperature/celsius}
    when: "!reading.attested && reading.attester == ''"
    do:
      - set: {signed: state.signed + 1}
  attested:
    on: {reading: sensor, type: temperature/celsius}
    when: reading.attested
    do:
      - set: {by: reading.attester}
`

// An agreement's reading trigger sees whether the reading was signed by
// its device or attested by a gateway, and by which: a guard
// !reading.attested refuses a gateway-attested reading (a Modbus sensor's)
// and takes a device-signed one; reading.attester is the gateway.
func TestAttestedReadingTrigger(t *testing.T) {
	home := mustKey(t, identity.Ed25519)
	g := GenesisState{Orgs: []GenesisOrg{{ID: "home", Admins: []string{home.ID()}}}}
	r := &recorder{c: newChainConfig(t, g, Config{}, []*identity.Key{mustKey(t, identity.Ed25519)})}
	sensor := r.register(home, "home", "sensor")
	gw := r.register(home, "home", record.ClassGateway)
	meter := mustKey(t, identity.Ed25519) // a sensor that cannot sign: its gateway does
	m := registerMsg(t, meter, "home")
	m.AttestedBy = gw.ID()
	r.must(home, "", m)

	v := 21.0
	rd := reading.Reading{Seq: 1, Time: time.UnixMilli(1e12), ContentType: "temperature/celsius", Value: &v}
	signed, err := reading.Sign(sensor, sensor.ID(), rd)
	if err != nil {
		t.Fatal(err)
	}
	attested, err := reading.SignAttested(gw, gw.ID(), meter.ID(), rd)
	if err != nil {
		t.Fatal(err)
	}
	l0, l1 := rfc6962.DefaultHasher.HashLeaf(signed), rfc6962.DefaultHasher.HashLeaf(attested)
	r.must(gw, "", &record.DataAnchor{Size: 2, Root: rfc6962.DefaultHasher.HashChildren(l0, l1)})
	evSigned := &record.ReadingEvidence{Gateway: gw.ID(), Index: 0, Size: 2, Envelope: signed, Inclusion: [][]byte{l1}}
	evAttested := &record.ReadingEvidence{Gateway: gw.ID(), Index: 1, Size: 2, Envelope: attested, Inclusion: [][]byte{l0}}

	deploy := func(dev *identity.Key) uint64 {
		r.must(home, "", &record.AgreementDeploy{Source: []byte(trustSource), Parties: map[string]string{"sensor": "device:" + dev.ID(), "owner": "org:home"}})
		n, err := r.c.view().Agreements(0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return n[len(n)-1].ID
	}
	call := func(id uint64, transition string, ev *record.ReadingEvidence) *record.AgreementCall {
		return &record.AgreementCall{ID: id, Transition: transition, Reading: ev}
	}

	// The meter's reading, attested by the gateway.
	onMeter := deploy(meter)
	r.want(record.CodeConflict, "guard", home, "", call(onMeter, "signed", evAttested))
	r.must(home, "", call(onMeter, "attested", evAttested))
	if by := r.stateVar(onMeter, "by"); by != gw.ID() {
		t.Errorf("reading.attester = %v; want the gateway %s", by, gw.ID())
	}
	// The sensor's own reading.
	onSensor := deploy(sensor)
	r.want(record.CodeConflict, "guard", home, "", call(onSensor, "attested", evSigned))
	r.must(home, "", call(onSensor, "signed", evSigned))
	if n := r.stateVar(onSensor, "signed"); n != int64(1) {
		t.Errorf("signed = %v; want 1", n)
	}
}
