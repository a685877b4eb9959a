package coap

import (
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	netclient "github.com/plgd-dev/go-coap/v3/net/client"
)

// Paths readings are posted to. PathShort is for constrained devices:
// every byte of the Uri-Path is sent with every reading.
const (
	PathShort = "/r"
	PathLong  = "/readings"
)

// action is what the server does with a datagram.
type action int

const (
	actDrop    action = iota // nothing is sent back
	actReset                 // a Reset (a CoAP ping, or a confirmable message that is malformed)
	actReply                 // the server answers with verdict.code itself, with no payload
	actForward               // a reading upload, handed to the endpoint's go-coap session
)

// verdict is what classify decided about a datagram.
type verdict struct {
	act    action
	code   codes.Code // for actReply
	silent bool       // for actReply: count the refusal, but send nothing
	reason string     // the Stats key of a refusal (actReply) or a drop (actDrop, actReset)
	block  block      // the Block1 option of an upload
}

// block is a request's Block1 option (RFC 7959).
type block struct {
	present bool
	num     int64
	more    bool
	size    int // bytes per block
}

// starts reports whether the block opens a multi-block upload.
func (b block) starts() bool { return b.present && b.num == 0 && b.more }

// continues reports whether the block belongs to an upload opened earlier.
func (b block) continues() bool { return b.present && b.num > 0 }

// isRequest reports whether m is a request: confirmable or not, with a
// method code (0.01 to 0.31).
func isRequest(m *message.Message) bool {
	return (m.Type == message.Confirmable || m.Type == message.NonConfirmable) &&
		m.Code >= codes.GET && m.Code <= 31
}

// classify decides, from a decoded datagram alone, what to do with it. It
// is cheap: it reads the header and the options, never the payload.
func classify(m *message.Message, maxPayload int) verdict {
	switch {
	case m.Code == codes.Empty && m.Type == message.Confirmable:
		return verdict{act: actReset, reason: DroppedPing} // CoAP ping: answered with a Reset (RFC 7252 §4.3)
	case !isRequest(m):
		// Empty NON, ACK and RST messages, and responses: the server sends
		// no requests nor confirmable messages, so none is expected.
		return verdict{act: actDrop, reason: DroppedNotRequest}
	}
	if bad := netclient.GetUnknownCriticalOptionsWithQBlock(m.Options, false); len(bad) > 0 {
		v := refuse(codes.BadOption, RefusedBadOption)
		v.silent = m.Type == message.NonConfirmable // RFC 7252 §5.4.1: a NON is rejected silently
		return v
	}
	if m.Options.HasOption(message.ProxyURI) || m.Options.HasOption(message.ProxyScheme) {
		return refuse(codes.ProxyingNotSupported, RefusedProxy)
	}
	if !isReadingPath(m.Options) {
		return refuse(codes.NotFound, RefusedNotFound)
	}
	if m.Code != codes.POST {
		return refuse(codes.MethodNotAllowed, RefusedMethod)
	}
	if cf, err := m.Options.ContentFormat(); err == nil && cf != message.AppCoseSign1 {
		return refuse(codes.UnsupportedMediaType, RefusedContentFormat)
	}
	if size1, err := m.Options.GetUint32(message.Size1); err == nil && int64(size1) > int64(maxPayload) {
		return refuse(codes.RequestEntityTooLarge, RefusedTooLarge)
	}
	v := verdict{act: actForward}
	if opt, err := m.Options.GetUint32(message.Block1); err == nil {
		szx, num, more, err := blockwise.DecodeBlockOption(opt)
		if err != nil || szx > blockwise.SZX1024 { // SZX 7 (BERT) is for CoAP over TCP only
			return refuse(codes.BadRequest, RefusedBadRequest)
		}
		v.block = block{present: true, num: num, more: more, size: int(szx.Size())}
		if num > int64(maxPayload)/szx.Size() {
			return refuse(codes.RequestEntityTooLarge, RefusedTooLarge)
		}
		if num*szx.Size()+int64(len(m.Payload)) > int64(maxPayload) {
			return refuse(codes.RequestEntityTooLarge, RefusedTooLarge)
		}
	} else if len(m.Payload) > maxPayload {
		return refuse(codes.RequestEntityTooLarge, RefusedTooLarge)
	}
	return v
}

func refuse(code codes.Code, reason string) verdict {
	return verdict{act: actReply, code: code, reason: reason}
}

// isReadingPath reports whether the Uri-Path is exactly PathShort or
// PathLong: one segment, no trailing slash.
func isReadingPath(opts message.Options) bool {
	var seg []byte
	n := 0
	for _, o := range opts {
		if o.ID == message.URIPath {
			seg = o.Value
			n++
		}
	}
	return n == 1 && (string(seg) == PathShort[1:] || string(seg) == PathLong[1:])
}
