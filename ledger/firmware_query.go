package ledger

import (
	"encoding/binary"

	"github.com/thingnet/thingnet/record"
)

// FirmwareReleases lists a vendor's releases for a class in seq order,
// those above after, at most limit (1..1000).
func (s *State) FirmwareReleases(vendor, class string, after uint64, limit int) ([]record.FirmwareReleaseRecord, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	p := []byte(record.PrefixFirmware + vendor + "/" + class + "\x00")
	start := p
	if after == ^uint64(0) {
		return nil, nil
	}
	if after > 0 {
		start = binary.BigEndian.AppendUint64(append([]byte{}, p...), after+1)
	}
	var out []record.FirmwareReleaseRecord
	err := s.scan(start, prefixEnd(p), func(_, v []byte) (bool, error) {
		var r record.FirmwareReleaseRecord
		if err := record.Unmarshal(v, &r); err != nil {
			return false, err
		}
		out = append(out, r)
		return len(out) < limit, nil
	})
	return out, err
}

// FirmwareApprovals lists an organisation's approvals for a class, in
// digest order.
func (s *State) FirmwareApprovals(org, class string) ([]record.FirmwareApproval, error) {
	p := []byte(record.PrefixFwApproval + org + "/" + class + "\x00")
	var out []record.FirmwareApproval
	err := s.scan(p, prefixEnd(p), func(_, v []byte) (bool, error) {
		var a record.FirmwareApproval
		if err := record.Unmarshal(v, &a); err != nil {
			return false, err
		}
		out = append(out, a)
		return true, nil
	})
	return out, err
}
