package datalog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// A segment is a run of a log's entries as archived (docs/protocol.md,
// "Log archive segments"): their exact bytes (what the leaf hashes hash),
// or for an entry whose value is not archived (erased, or kept by the
// gateway until its retention drops it) only its 32-byte leaf hash, with a
// header naming the log and the tree it was cut from. All integers are
// big-endian:
//
//	magic     "TNLS" (4 bytes)
//	version   1 (1 byte)
//	gateway   length (1 byte, 1..255) | the gateway's device id
//	first     index of the first entry (8 bytes)
//	count     entries (4 bytes, 1..MaxSegmentEntries)
//	log size  size of the log when the segment was cut (8 bytes, >= first+count)
//	log root  RFC 6962 root of that log (32 bytes)
//	count items, each:
//	  0x00 | length (4 bytes, 1..MaxEntrySize) | entry bytes
//	  0x01 | leaf hash (32 bytes)
//
// Nothing follows the last item. Its digest (SHA-256 of the whole) is what
// the ledger's log.archive record names.

// Segment limits.
const (
	MaxSegmentEntries = 1 << 16
	MaxSegmentBytes   = 64 << 20
	segmentVersion    = 1
)

var segmentMagic = []byte("TNLS")

// ErrSegment reports bytes that are not a well-formed segment.
var ErrSegment = errors.New("datalog: malformed segment")

// Segment is a decoded segment.
type Segment struct {
	Gateway string
	First   uint64
	LogSize uint64
	LogRoot [HashSize]byte
	Items   []SegmentItem // entries First, First+1, ...
}

// SegmentItem is one entry of a segment: its bytes, or (Entry nil) only
// its leaf hash.
type SegmentItem struct {
	Entry []byte
	Leaf  [HashSize]byte
}

// Range is the segment's range of entries.
func (s *Segment) Range() ArchivedRange {
	return ArchivedRange{First: s.First, Count: uint64(len(s.Items))}
}

// Entry returns entry i's bytes, or false if the segment holds only its
// leaf hash or does not cover it.
func (s *Segment) Entry(i uint64) ([]byte, bool) {
	if i < s.First || i-s.First >= uint64(len(s.Items)) {
		return nil, false
	}
	e := s.Items[i-s.First].Entry
	return e, e != nil
}

// Encode returns the segment's bytes.
func (s *Segment) Encode() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(segmentMagic)
	b.WriteByte(segmentVersion)
	b.WriteByte(byte(len(s.Gateway)))
	b.WriteString(s.Gateway)
	b.Write(binary.BigEndian.AppendUint64(nil, s.First))
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s.Items))))
	b.Write(binary.BigEndian.AppendUint64(nil, s.LogSize))
	b.Write(s.LogRoot[:])
	for _, it := range s.Items {
		if it.Entry != nil {
			b.WriteByte(0)
			b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(it.Entry))))
			b.Write(it.Entry)
		} else {
			b.WriteByte(1)
			b.Write(it.Leaf[:])
		}
		if b.Len() > MaxSegmentBytes {
			return nil, fmt.Errorf("%w: segment of entries %d..+%d is over %d bytes", ErrTooLarge, s.First, len(s.Items), MaxSegmentBytes)
		}
	}
	return b.Bytes(), nil
}

func (s *Segment) check() error {
	n := uint64(len(s.Items))
	switch {
	case len(s.Gateway) == 0 || len(s.Gateway) > 255:
		return fmt.Errorf("%w: gateway id of %d bytes, want 1 to 255", ErrSegment, len(s.Gateway))
	case n == 0 || n > MaxSegmentEntries:
		return fmt.Errorf("%w: %d entries, want 1 to %d", ErrSegment, n, MaxSegmentEntries)
	case s.First+n < s.First || s.LogSize < s.First+n:
		return fmt.Errorf("%w: entries %d..+%d are not in a log of size %d", ErrSegment, s.First, n, s.LogSize)
	}
	for k, it := range s.Items {
		if it.Entry != nil && (len(it.Entry) == 0 || len(it.Entry) > MaxEntrySize) {
			return fmt.Errorf("%w: entry %d is %d bytes, want 1 to %d", ErrSegment, s.First+uint64(k), len(it.Entry), MaxEntrySize)
		}
	}
	return nil
}

// DecodeSegment decodes and checks the bytes of a segment. Each item's
// Leaf is set (for an entry, its leaf hash). Errors wrap ErrSegment.
func DecodeSegment(b []byte) (*Segment, error) {
	if len(b) > MaxSegmentBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrSegment, len(b), MaxSegmentBytes)
	}
	r := segReader{b: b}
	if m := r.next(len(segmentMagic)); !bytes.Equal(m, segmentMagic) {
		return nil, fmt.Errorf("%w: no segment magic %q", ErrSegment, segmentMagic)
	}
	if v := r.byte(); v != segmentVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrSegment, v, segmentVersion)
	}
	s := &Segment{}
	s.Gateway = string(r.next(int(r.byte())))
	s.First = r.u64()
	n := r.u32()
	s.LogSize = r.u64()
	copy(s.LogRoot[:], r.next(HashSize))
	if r.err != nil {
		return nil, r.err
	}
	if n == 0 || n > MaxSegmentEntries {
		return nil, fmt.Errorf("%w: %d entries, want 1 to %d", ErrSegment, n, MaxSegmentEntries)
	}
	s.Items = make([]SegmentItem, 0, min(int(n), len(b)/(1+HashSize)+1))
	for k := uint32(0); k < n && r.err == nil; k++ {
		var it SegmentItem
		switch kind := r.byte(); kind {
		case 0:
			l := r.u32()
			if r.err == nil && (l == 0 || l > MaxEntrySize) {
				return nil, fmt.Errorf("%w: entry %d is %d bytes, want 1 to %d", ErrSegment, s.First+uint64(k), l, MaxEntrySize)
			}
			it.Entry = bytes.Clone(r.next(int(l)))
			it.Leaf = LeafHash(it.Entry)
		case 1:
			copy(it.Leaf[:], r.next(HashSize))
		default:
			if r.err == nil {
				return nil, fmt.Errorf("%w: item %d has kind %d, want 0 (entry) or 1 (leaf hash)", ErrSegment, k, kind)
			}
		}
		s.Items = append(s.Items, it)
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after the last entry", ErrSegment, len(b)-r.off)
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// segReader reads a segment's fields; the first short read sets err.
type segReader struct {
	b   []byte
	off int
	err error
}

func (r *segReader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("%w: truncated at byte %d (want %d more)", ErrSegment, r.off, n)
		return nil
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func (r *segReader) byte() byte {
	if b := r.next(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *segReader) u32() uint32 {
	if b := r.next(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *segReader) u64() uint64 {
	if b := r.next(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// CutSegment builds the segment of the entries of r, for the log of
// gateway at its current size: a stored entry goes in whole if keep says
// so (else its leaf hash only), an erased one as its leaf hash.
func (l *Log) CutSegment(gateway string, r ArchivedRange, keep func(i uint64, entry []byte) bool) (*Segment, error) {
	size, root := l.Root()
	if r.Count == 0 || r.Count > MaxSegmentEntries || r.End() > size {
		return nil, fmt.Errorf("%w: segment of entries %d..+%d of a log of size %d", ErrOutOfRange, r.First, r.Count, size)
	}
	s := &Segment{Gateway: gateway, First: r.First, LogSize: size, LogRoot: root, Items: make([]SegmentItem, 0, r.Count)}
	for i := r.First; i < r.End(); i++ {
		leaf, err := l.LeafHash(i)
		if err != nil {
			return nil, err
		}
		it := SegmentItem{Leaf: leaf}
		e, err := l.Entry(i)
		switch {
		case errors.Is(err, ErrErased):
		case err != nil:
			return nil, err
		case keep(i, e):
			it.Entry = e
		}
		s.Items = append(s.Items, it)
	}
	return s, nil
}

// CheckSegment checks that s is the segment of entries r of this log: the
// same gateway's, every item's leaf hash the one the log stored.
func (l *Log) CheckSegment(s *Segment, gateway string, r ArchivedRange) error {
	return s.Check(gateway, r, l.LeafHash)
}

// Check checks that s is gateway's segment of entries r, each item's leaf
// hash the one leaf gives (the log's).
func (s *Segment) Check(gateway string, r ArchivedRange, leaf func(i uint64) ([HashSize]byte, error)) error {
	if s.Gateway != gateway || s.Range() != r {
		return fmt.Errorf("%w: the segment is of %s's entries %d..+%d, want %s's %d..+%d", ErrSegment, s.Gateway, s.First, len(s.Items), gateway, r.First, r.Count)
	}
	for k, it := range s.Items {
		i := r.First + uint64(k)
		want, err := leaf(i)
		if err != nil {
			return err
		}
		if want != it.Leaf {
			return fmt.Errorf("%w: the segment's entry %d hashes to leaf %x, the log holds %x", ErrSegment, i, it.Leaf[:8], want[:8])
		}
	}
	return nil
}
