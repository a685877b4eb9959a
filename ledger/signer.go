package ledger

import (
	"errors"
	"fmt"
)

// recordDevice appends a history event for a change of d at ev.Height and
// writes d: the event gets the next sequence number and d's status and key
// after the change. Every change of a device goes through here (txs,
// agreement effects, genesis), so its history says, for every height, what
// the device held then (HistoryAt).
func recordDevice(buf *buffer, d *Device, ev Event) {
	d.History++
	d.Updated = ev.Height
	ev.Seq, ev.Status, ev.Key = d.History, d.Status, d.Key
	buf.set(HistoryKey(d.ID, ev.Seq), &ev)
	buf.set(DeviceKey(d.ID), d)
}

// HistoryAt returns the event of device id in force at height: the last
// one recorded at or before it, whose Status and Key the device held in
// the state after block height; and the device's current record, whose
// History says whether a later event exists. Both come from the current
// state, which keeps every history event, so this answers for any height
// whatever older versions were pruned. The event is nil if id was not
// registered by then; ErrNotFound if id was never registered.
func (s *State) HistoryAt(id string, height int64) (*Event, *Device, error) {
	d, err := s.Device(id)
	if err != nil {
		return nil, nil, err
	}
	// Events are appended with non-decreasing heights: find the last one
	// at or below height by bisection over 1..d.History.
	var held *Event
	lo, hi := uint64(1), d.History
	for lo <= hi {
		mid := lo + (hi-lo)/2
		var e Event
		ok, err := s.get(HistoryKey(id, mid), &e)
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

// ErrSignerNotActive is returned (wrapped) when a signer was not
// registered, not active, or held no recorded key at a height.
var ErrSignerNotActive = errors.New("signer not active")

// SignerKeyAt is the signer rule for anything signed under the ledger's
// authority (readings, their evidence, attestations): id must have been
// registered and active at height, and the key it held then signs. held
// is id's history event in force at height (HistoryAt; nil: not
// registered yet). It returns that key (a did:key).
func SignerKeyAt(id string, height int64, held *Event) (string, error) {
	switch {
	case held == nil:
		return "", fmt.Errorf("%w: %s was not registered at height %d", ErrSignerNotActive, id, height)
	case held.Height > height:
		return "", fmt.Errorf("%w: %s's history event %d is of height %d, after %d", ErrSignerNotActive, id, held.Seq, held.Height, height)
	case held.Status != StatusActive:
		return "", fmt.Errorf("%w: %s was %s at height %d", ErrSignerNotActive, id, held.Status, height)
	case held.Key == "":
		return "", fmt.Errorf("%w: %s's history event %d records no key", ErrSignerNotActive, id, held.Seq)
	}
	return held.Key, nil
}
