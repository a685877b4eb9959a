package ledger

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/thingnet/thingnet/record"
)

// logArchive records a gateway's archived range of its data log
// (record.LogArchiveMsg): ranges follow each other from entry 0, within
// the gateway's anchored log.
func (x *txExec) logArchive(m *record.LogArchiveMsg) error {
	if x.device == nil || x.device.Class != record.ClassGateway {
		return record.Errf(record.CodeUnauthorized, "only a device of class %q archives a data log", record.ClassGateway)
	}
	gw := x.device.ID
	a, err := x.st.Anchor(gw)
	if errors.Is(err, ErrNotFound) || err == nil && a.Size < m.First+m.Count {
		anchored := uint64(0)
		if a != nil {
			anchored = a.Size
		}
		return record.Errf(record.CodeConflict, "entries %d..%d are not all anchored (the anchored log has %d)", m.First, m.First+m.Count-1, anchored)
	}
	if err != nil {
		return err
	}
	if m.Recut {
		return x.logRecut(gw, m)
	}
	// Contiguous: the range before ends at First (none for entry 0), and
	// none ends after it.
	if m.First > 0 {
		var prev record.LogArchive
		if ok, err := x.st.get(record.LogArchiveKey(gw, m.First), &prev); err != nil {
			return err
		} else if !ok {
			return record.Errf(record.CodeConflict, "no archived range of %s ends at entry %d: ranges follow each other from entry 0", gw, m.First)
		}
	}
	if later, err := x.st.LogArchiveCovering(gw, m.First); err == nil {
		return record.Errf(record.CodeConflict, "entries %d..%d of %s are archived already", later.First, later.End()-1, gw)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	x.buf.set(record.LogArchiveKey(gw, m.First+m.Count), &record.LogArchive{
		Gateway: gw, First: m.First, Count: m.Count, CID: m.CID, Digest: m.Digest, Size: m.Size, Height: x.height,
	})
	x.emit("log_archive", "gateway", gw, "first", strconv.FormatUint(m.First, 10), "count", strconv.FormatUint(m.Count, 10),
		"cid", m.CID, "digest", hex.EncodeToString(m.Digest))
	return nil
}

// logRecut replaces the segment of gw's recorded range [m.First,
// m.First+m.Count) by m's: the same range, cut again without erased values.
func (x *txExec) logRecut(gw string, m *record.LogArchiveMsg) error {
	var prev record.LogArchive
	key := record.LogArchiveKey(gw, m.First+m.Count)
	if ok, err := x.st.get(key, &prev); err != nil {
		return err
	} else if !ok || prev.First != m.First {
		return record.Errf(record.CodeConflict, "no archived range %d..%d of %s to re-cut: a re-cut replaces a recorded range exactly", m.First, m.First+m.Count-1, gw)
	}
	if prev.CID == m.CID {
		return record.Errf(record.CodeConflict, "entries %d..%d of %s are archived in %s already", m.First, m.First+m.Count-1, gw, m.CID)
	}
	replaced := append(prev.Replaced, prev.CID)
	if n := len(replaced); n > record.MaxReplacedSegments {
		replaced = replaced[n-record.MaxReplacedSegments:]
	}
	x.buf.set(key, &record.LogArchive{
		Gateway: gw, First: m.First, Count: m.Count, CID: m.CID, Digest: m.Digest, Size: m.Size, Height: x.height, Replaced: replaced,
	})
	x.emit("log_archive", "gateway", gw, "first", strconv.FormatUint(m.First, 10), "count", strconv.FormatUint(m.Count, 10),
		"cid", m.CID, "digest", hex.EncodeToString(m.Digest), "replaced", prev.CID)
	return nil
}

// LogArchiveCovering returns the archived range of gateway's log holding
// entry index.
func (s *State) LogArchiveCovering(gateway string, index uint64) (*record.LogArchive, error) {
	var a record.LogArchive
	found, err := s.firstFrom(record.LogArchiveKey(gateway, index+1), []byte(record.PrefixLogArchive+gateway+"/"), &a)
	if err != nil {
		return nil, err
	}
	if !found || a.First > index {
		return nil, fmt.Errorf("no archived range of gateway %q holds entry %d: %w", gateway, index, ErrNotFound)
	}
	return &a, nil
}

// LastLogArchive returns gateway's last archived range.
func (s *State) LastLogArchive(gateway string) (*record.LogArchive, error) {
	p := []byte(record.PrefixLogArchive + gateway + "/")
	it, err := s.r.Iterator(p, prefixEnd(p), false)
	if err != nil {
		return nil, fmt.Errorf("iterating state: %w", err)
	}
	defer it.Close()
	if !it.Valid() {
		return nil, fmt.Errorf("gateway %q archived nothing: %w", gateway, ErrNotFound)
	}
	var a record.LogArchive
	if err := record.Unmarshal(it.Value(), &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// LogArchives calls fn with gateway's archived ranges in order ("" for
// every gateway's, by gateway), until fn returns false.
func (s *State) LogArchives(gateway string, fn func(*record.LogArchive) bool) error {
	p := []byte(record.PrefixLogArchive)
	if gateway != "" {
		p = append(p, gateway+"/"...)
	}
	return s.scan(p, prefixEnd(p), func(_, v []byte) (bool, error) {
		var a record.LogArchive
		if err := record.Unmarshal(v, &a); err != nil {
			return false, err
		}
		return fn(&a), nil
	})
}
