package ledger

import (
	"fmt"

	"github.com/thingnet/thingnet/record"
)

// recordDevice appends a history event for a change of d at ev.Height and
// writes d: the event gets the next sequence number and d's status and key
// after the change. Every change of a device goes through here (txs,
// agreement effects, genesis), so its history says, for every height, what
// the device held then (HistoryAt).
func recordDevice(buf *buffer, d *record.Device, ev record.Event) {
	d.History++
	d.Updated = ev.Height
	ev.Seq, ev.Status, ev.Key = d.History, d.Status, d.Key
	buf.set(record.HistoryKey(d.ID, ev.Seq), &ev)
	buf.set(record.DeviceKey(d.ID), d)
}

// HistoryAt returns the event of device id in force at height: the last
// one recorded at or before it, whose Status and Key the device held in
// the state after block height; and the device's current record, whose
// History says whether a later event exists. Both come from the current
// state, which keeps every history event, so this answers for any height
// whatever older versions were pruned. The event is nil if id was not
// registered by then; ErrNotFound if id was never registered.
func (s *State) HistoryAt(id string, height int64) (*record.Event, *record.Device, error) {
	d, err := s.Device(id)
	if err != nil {
		return nil, nil, err
	}
	// Events are appended with non-decreasing heights: find the last one
	// at or below height by bisection over 1..d.History.
	var held *record.Event
	lo, hi := uint64(1), d.History
	for lo <= hi {
		mid := lo + (hi-lo)/2
		var e record.Event
		ok, err := s.get(record.HistoryKey(id, mid), &e)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return nil, nil, fmt.Errorf("history event %d of %s is missing (the record counts %d)", mid, id, d.History)
		}
		if e.Height <= height {
			held, lo = &e, mid+1
		} else {
			hi = mid - 1
		}
	}
	return held, d, nil
}
