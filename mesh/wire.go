package mesh

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/thingnet/thingnet/mesh/message"
)

// Protocol ids.
const (
	ProtoMessage     = "/thingnet/msg/1.0.0"
	ProtoMailboxPut  = "/thingnet/mailbox/put/1.0.0"
	ProtoMailboxPull = "/thingnet/mailbox/pull/1.0.0"
	ProtoWake        = "/thingnet/wake/1.0.0"
)

// maxFrame bounds one frame: a message or a receipt of a full batch.
const maxFrame = message.MaxEnvelope + 16<<10

// maxBatch is how many messages the receiver verifies together and
// answers with one receipt.
const maxBatch = 128

// Frames are an unsigned LEB128 (varint) length and that many bytes.
func writeFrame(w *bufio.Writer, b []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	if _, err := w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(b)))]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: frame of %d bytes, more than %d", message.ErrMalformed, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
