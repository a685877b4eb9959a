package events

import (
	"encoding/json"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
)

// TestEffectEvents: an agreement's suspension and command (ABCI events of
// a tx or of the block) become device.status and command events.
func TestEffectEvents(t *testing.T) {
	bus := NewBus(16)
	evs := []abci.Event{
		{Type: "agreement", Attributes: []abci.EventAttribute{{Key: "id", Value: "3"}}},
		{Type: "device", Attributes: []abci.EventAttribute{{Key: "id", Value: "did:key:zA"}, {Key: "action", Value: "device.suspend"}, {Key: "status", Value: "suspended"}}},
		{Type: "command", Attributes: []abci.EventAttribute{{Key: "id", Value: "7"}, {Key: "device", Value: "did:key:zB"}, {Key: "agreement", Value: "3"}}},
	}
	for _, f := range effectEvents(bus, evs, 42, "ABCD") {
		f()
	}
	got := bus.Recent(10)
	if len(got) != 2 {
		t.Fatalf("%d events: %+v", len(got), got)
	}
	var d DeviceData
	var c CommandData
	if err := json.Unmarshal(got[0].Data, &d); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got[1].Data, &c); err != nil {
		t.Fatal(err)
	}
	if got[0].Type != TypeDeviceStatus || d.Device != "did:key:zA" || d.Status != "suspended" || d.Height != 42 || d.Signer != "agreement" {
		t.Fatalf("first: %+v", got[0])
	}
	if got[1].Type != TypeCommand || c.ID != "7" || c.Device != "did:key:zB" || c.Agreement != "3" || c.Tx != "ABCD" {
		t.Fatalf("second: %+v", got[1])
	}
}

// TestCountTransitions: executed transitions are counted by trigger; an
// agreement's deploy event (no transition) is not.
func TestCountTransitions(t *testing.T) {
	m := map[string]uint64{}
	countTransitions(m, []abci.Event{
		{Type: "agreement", Attributes: []abci.EventAttribute{{Key: "id", Value: "1"}, {Key: "name", Value: "x"}, {Key: "status", Value: "active"}}},
		{Type: "agreement", Attributes: []abci.EventAttribute{{Key: "id", Value: "1"}, {Key: "transition", Value: "hot"}, {Key: "trigger", Value: "reading"}}},
		{Type: "agreement", Attributes: []abci.EventAttribute{{Key: "id", Value: "2"}, {Key: "transition", Value: "tick"}, {Key: "trigger", Value: "height"}}},
		{Type: "agreement", Attributes: []abci.EventAttribute{{Key: "id", Value: "2"}, {Key: "transition", Value: "tick"}, {Key: "trigger", Value: "height"}}},
		{Type: "device", Attributes: []abci.EventAttribute{{Key: "transition", Value: "no"}}},
	})
	if len(m) != 2 || m["reading"] != 1 || m["height"] != 2 {
		t.Fatalf("%v", m)
	}
}
