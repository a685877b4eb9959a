package coap

import (
	"net"
	"net/netip"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// FuzzDatagram feeds arbitrary datagrams to a running server's read-loop
// handler (the code every datagram from the network goes through first:
// decode, classify, limit, answer or hand to a session). Whatever the
// bytes, the server must not panic, must never build an answer larger
// than amplification times the request.
func FuzzDatagram(f *testing.F) {
	e := start(f, nil)
	dev := newDevice(f, e.ingest)
	for _, seed := range [][]byte{
		msg(f, message.Confirmable, codes.Empty, 1, nil, nil),                      // ping
		{0x49, 0x02, 0x12, 0x34},                                                   // token length 9
		postR(f, 7, []byte{1, 2}, dev.reading(f)),                                  // a reading
		postR(f, 8, nil, tamper(dev.reading(f))),                                   // a forged one
		postR(f, 9, nil, make([]byte, 16), uintOption(message.Block1, 3<<4)),       // a block of no upload
		postR(f, 10, nil, make([]byte, 16), uintOption(message.Block1, 0<<4|1<<3)), // the first of an upload
		postR(f, 11, nil, []byte{1}, uintOption(message.Size1, 1<<20)),             // announced too large
		msg(f, message.Confirmable, codes.POST, 12, nil, nil, message.Option{ID: message.ProxyURI, Value: []byte("coap://x")}),
		msg(f, message.Acknowledgement, codes.Content, 13, nil, []byte("x")),
	} {
		f.Add(seed)
	}
	// Answers go to a socket nobody reads: the fuzzer checks the server's
	// own accounting, which sees every answer before it is sent.
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = sink.Close() })
	from := netip.MustParseAddrPort(sink.LocalAddr().String())
	d := newDecoder()
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxDatagram {
			return
		}
		e.srv.datagram(d, b, from)
		if n := e.srv.Stats().Dropped[DroppedAmplification]; n != 0 {
			t.Fatalf("%d answers would have exceeded the amplification bound (last request % x)", n, b)
		}
	})
}
