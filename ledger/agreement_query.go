// Reading agreements, their history and the commands they sent to devices.

package ledger

import (
	"encoding/binary"
	"fmt"

	"github.com/thingnet/thingnet/record"
)

// Agreement returns an agreement.
func (s *State) Agreement(id uint64) (*record.Agreement, error) {
	var a record.Agreement
	ok, err := s.get(record.AgreementKey(id), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("agreement %d: %w", id, ErrNotFound)
	}
	return &a, nil
}

// Agreements lists agreements with id above after, in id order.
func (s *State) Agreements(after uint64, limit int) ([]record.Agreement, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []record.Agreement
	err := s.scan(record.AgreementKey(after+1), prefixEnd([]byte(record.PrefixAgreement)), func(_, v []byte) (bool, error) {
		var a record.Agreement
		if err := record.Unmarshal(v, &a); err != nil {
			return false, err
		}
		out = append(out, a)
		return len(out) < limit, nil
	})
	return out, err
}

// AgreementHistory returns up to limit history entries of an agreement from seq from (1-based).
func (s *State) AgreementHistory(id, from uint64, limit int) ([]record.AgreementEvent, error) {
	if from == 0 {
		from = 1
	}
	if limit <= 0 {
		limit = 100
	}
	var out []record.AgreementEvent
	p := binary.BigEndian.AppendUint64([]byte(record.PrefixAgreementLog), id)
	err := s.scan(record.AgreementEventKey(id, from), prefixEnd(p), func(_, v []byte) (bool, error) {
		var e record.AgreementEvent
		if err := record.Unmarshal(v, &e); err != nil {
			return false, err
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}

// Commands returns a device's commands with id above after, oldest first.
func (s *State) Commands(device string, after uint64, limit int) ([]record.Command, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []record.Command
	err := s.scan(record.CommandKey(device, after+1), prefixEnd([]byte(record.PrefixCommand+device+"/")), func(_, v []byte) (bool, error) {
		var c record.Command
		if err := record.Unmarshal(v, &c); err != nil {
			return false, err
		}
		out = append(out, c)
		return len(out) < limit, nil
	})
	return out, err
}
