package datalog

import (
	"encoding/binary"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
)

// stateVersion is the version byte of the encoded state.
const stateVersion = 1

// stateHeaderLen is the length of the state before its hashes: version and
// size.
const stateHeaderLen = 1 + 8

// encodeState encodes the log's size and the hashes of its compact range
// [0, size) as: version (1 byte) | size (8 bytes, big-endian) | hashes
// (HashSize bytes each, as many as compact.RangeSize(0, size)).
func encodeState(size uint64, hashes [][]byte) []byte {
	b := make([]byte, stateHeaderLen, stateHeaderLen+len(hashes)*HashSize)
	b[0] = stateVersion
	binary.BigEndian.PutUint64(b[1:], size)
	for _, h := range hashes {
		b = append(b, h...)
	}
	return b
}

// decodeState decodes a state written by encodeState. Errors wrap
// ErrCorrupt. The returned hashes do not alias b.
func decodeState(b []byte) (size uint64, hashes [][]byte, err error) {
	if len(b) < stateHeaderLen {
		return 0, nil, fmt.Errorf("%w: state record is %d bytes, want at least %d", ErrCorrupt, len(b), stateHeaderLen)
	}
	if b[0] != stateVersion {
		return 0, nil, fmt.Errorf("%w: state record version %d, want %d", ErrCorrupt, b[0], stateVersion)
	}
	size = binary.BigEndian.Uint64(b[1:])
	rest := b[stateHeaderLen:]
	want := compact.RangeSize(0, size)
	if len(rest) != want*HashSize {
		return 0, nil, fmt.Errorf("%w: state record for size %d has %d bytes of hashes, want %d", ErrCorrupt, size, len(rest), want*HashSize)
	}
	hashes = make([][]byte, want)
	for i := range hashes {
		hashes[i] = append([]byte(nil), rest[i*HashSize:(i+1)*HashSize]...)
	}
	return size, hashes, nil
}
