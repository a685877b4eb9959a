package coap

import (
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// amplification is the bound on every answer to a request the server has
// not authenticated: at most this many times the request's size in bytes.
const amplification = 3

// maxReplySize is the largest answer the server builds itself: a header,
// an 8-byte token and one option of at most 6 bytes (Size1 or Max-Age).
const maxReplySize = 4 + 8 + 6

// encodeReply encodes the answer to request m with code and no payload,
// into buf (at least maxReplySize bytes): piggybacked in an ACK for a
// confirmable request, a NON with a new message id otherwise (RFC 7252
// §5.2). opt, if its ID is not zero, is the answer's only option.
func encodeReply(buf []byte, m *message.Message, code codes.Code, opt message.Option) ([]byte, error) {
	r := message.Message{Token: m.Token, Code: code, Type: message.NonConfirmable, MessageID: message.GetMID()}
	if m.Type == message.Confirmable {
		r.Type, r.MessageID = message.Acknowledgement, m.MessageID
	}
	if opt.ID != 0 {
		r.Options = message.Options{opt}
	}
	n, err := coder.DefaultCoder.Encode(r, buf)
	if err != nil {
		return nil, fmt.Errorf("coap: encoding a %v answer: %w", code, err)
	}
	return buf[:n], nil
}

// encodeReset encodes a Reset of message id mid (4 bytes).
func encodeReset(buf []byte, mid uint16) []byte {
	return append(buf[:0], 0x70, 0x00, byte(mid>>8), byte(mid)) // version 1, type RST, no token, code 0.00
}

// uintOption is option id with the shortest encoding of v (RFC 7252 §3.2).
func uintOption(id message.OptionID, v uint32) message.Option {
	var b [4]byte
	n, _ := message.EncodeUint32(b[:], v) // cannot fail: b holds any uint32
	return message.Option{ID: id, Value: append([]byte(nil), b[:n]...)}
}

// within reports whether an answer of size bytes to a request of reqSize
// bytes respects the amplification bound.
func within(size, reqSize int) bool { return size <= amplification*reqSize }
