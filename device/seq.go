package device

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/thingnet/thingnet/internal/atomicfile"
)

const seqFile = "seq"

// seqStore hands out sequence numbers. With a directory it persists the
// end of the reserved block (8 bytes, big-endian) before using any number
// of it, so a restart skips at most one block and never reuses a number.
// Without one it starts from the clock in milliseconds every time, which
// also only grows across restarts as long as the clock does.
type seqStore struct {
	path  string
	block uint64

	mu       sync.Mutex
	next     uint64
	reserved uint64 // numbers below this may be used without writing
}

func openSeq(dir string, block uint64, now func() time.Time) (*seqStore, error) {
	// A device with no stored number starts from the clock: a device
	// whose storage was wiped then does not reuse its old numbers either
	// (gateways accept gaps).
	s := &seqStore{block: block, next: max(1, uint64(now().UnixMilli()))}
	if dir == "" {
		s.reserved = ^uint64(0)
		return s, nil
	}
	s.path = filepath.Join(dir, seqFile)
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("device: reading the sequence number: %w", err)
	case len(b) != 8:
		return nil, fmt.Errorf("device: %s is %d bytes, want 8 (damaged; the device would reuse sequence numbers, so it stops: restore it or set a higher one)", s.path, len(b))
	default:
		s.next = binary.BigEndian.Uint64(b)
		s.reserved = s.next
	}
	return s, nil
}

// take returns n consecutive sequence numbers' first.
func (s *seqStore) take(n int) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.next
	end := first + uint64(n)
	if end > s.reserved {
		r := end + s.block
		if err := atomicfile.WriteFile(s.path, binary.BigEndian.AppendUint64(nil, r)); err != nil {
			return 0, fmt.Errorf("device: saving the sequence number: %w", err)
		}
		s.reserved = r
	}
	s.next = end
	return first, nil
}

// peek returns the next sequence number.
func (s *seqStore) peek() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// NextSeq is the sequence number the next reading without one will get.
func (d *Device) NextSeq() uint64 { return d.seq.peek() }
