package ledger

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// TestDataAnchor anchors a growing log and checks the ledger refuses
// anything but an append-only extension, from anyone but a gateway.
func TestDataAnchor(t *testing.T) {
	admin := mustKey(t, identity.Ed25519)
	c := newChain(t, orgGenesis(admin, "acme"), "")
	gw := mustKey(t, identity.Ed25519)
	m := registerMsg(t, gw, "acme")
	m.Class = record.ClassGateway
	c.must(admin, "", m)
	sensor := c.register(admin, "acme", identity.Ed25519)

	log := testonly.New(rfc6962.DefaultHasher)
	grow := func(n int) {
		for i := 0; i < n; i++ {
			log.AppendData([]byte(fmt.Sprintf("reading %d", log.Size())))
		}
	}
	anchor := func(from uint64) *record.DataAnchor {
		a := &record.DataAnchor{Size: log.Size(), Root: log.Hash()}
		if from > 0 {
			p, err := log.ConsistencyProof(from, log.Size())
			if err != nil {
				t.Fatal(err)
			}
			a.Consistency = p
		}
		return a
	}

	grow(5)
	c.want(record.CodeUnauthorized, sensor, "", anchor(0)) // not a gateway
	c.want(record.CodeUnauthorized, admin, "", anchor(0))  // not a device at all
	c.must(gw, "", anchor(0))
	c.want(record.CodeConflict, gw, "", anchor(5)) // same size again

	grow(12)
	bad := anchor(5)
	bad.Consistency[0] = bytes.Repeat([]byte{7}, 32)
	c.want(record.CodeInvalid, gw, "", bad) // a proof that does not link the roots
	forked := testonly.New(rfc6962.DefaultHasher)
	for i := uint64(0); i < log.Size(); i++ {
		forked.AppendData([]byte(fmt.Sprintf("rewritten %d", i)))
	}
	p, _ := forked.ConsistencyProof(5, forked.Size())
	c.want(record.CodeInvalid, gw, "", &record.DataAnchor{Size: forked.Size(), Root: forked.Hash(), Consistency: p}) // a rewritten history
	c.must(gw, "", anchor(5))

	st := c.view()
	a, err := st.Anchor(gw.ID())
	if err != nil || a.Size != 17 || a.Count != 2 || !bytes.Equal(a.Root, log.Hash()) {
		t.Fatalf("Anchor = %+v, %v; want size 17, 2 anchors, the log's root", a, err)
	}
	for _, tc := range []struct {
		index uint64
		want  uint64 // size of the covering anchor; 0 = none
	}{{0, 5}, {4, 5}, {5, 17}, {16, 17}, {17, 0}} {
		got, err := st.AnchorCovering(gw.ID(), tc.index)
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("AnchorCovering(%d) = size %d; want none", tc.index, got.Size)
		case tc.want != 0 && (err != nil || got.Size != tc.want):
			t.Errorf("AnchorCovering(%d) = %+v, %v; want size %d", tc.index, got, err, tc.want)
		}
	}

	// A suspended gateway cannot anchor; attested devices need a gateway of their org.
	c.must(admin, "", record.NewDeviceStatus(gw.ID(), record.StatusSuspended, ""))
	grow(1)
	c.want(record.CodeInactive, gw, "", anchor(17))
	weak := mustKey(t, identity.Ed25519)
	wm := registerMsg(t, weak, "acme")
	wm.AttestedBy = sensor.ID()
	c.want(record.CodeInvalid, admin, "", wm)
	wm.AttestedBy = gw.ID()
	c.must(admin, "", wm)
	if d, _ := c.view().Device(weak.ID()); d.AttestedBy != gw.ID() {
		t.Errorf("AttestedBy = %q; want the gateway", d.AttestedBy)
	}
}
