// Package coap is the gateway's CoAP server (RFC 7252, over UDP) for signed
// readings, on github.com/plgd-dev/go-coap/v3. A device POSTs a reading
// envelope (COSE_Sign1, content format 18 or none) to /r or /readings and
// gets 2.04 Changed once the reading is durably stored. CoAP authenticates
// no one here: a reading authenticates itself by its signature, which the
// Ingestor (the gateway core) checks. docs/coap.md lists the codes.
//
// # How the server is built
//
// The server reads its UDP socket itself and looks at every datagram
// before go-coap does (datagram.go): it decodes the CoAP header and options
// with go-coap's codec, classifies the request (path, method, content
// format, size, Block1, critical options; classify.go), asks the Limiter
// for the source address, and answers every refusal itself. Only uploads
// of readings reach go-coap: each client endpoint (address and port) has a
// session (session.go) holding a go-coap client.Conn, the same connection
// type go-coap's own UDP server keeps per endpoint, with block-wise
// transfer enabled. go-coap then deduplicates the requests by message id,
// caches the answers for retransmissions, assembles Block1 uploads and
// piggybacks the answer on the ACK of a confirmable request. go-coap's own
// server loop is not used because it would answer some requests before
// any hook could see them: an unrecognised critical option gets a 4.02
// with a diagnostic text several times the request's size, which breaks
// the amplification bound, and it is never rate-limited.
//
// # 2.04 only once the reading is stored
//
// go-coap calls the resource handler (handler.go, Server.handle) with the
// complete upload, and writes the answer the handler set only after the
// handler returned (client.Conn.ProcessReceivedMessageWithHandler). The
// handler blocks in Ingest and sets 2.04 only when Ingest returned nil or
// edge.ErrDuplicate; any other outcome sets an error code. So no 2.04 can
// leave before the reading is stored. A retransmission that arrives while
// Ingest runs is dropped (Server.dispatch keeps the message ids in
// flight); one that arrives later gets the cached answer from go-coap
// without Ingest being called again.
//
// # No amplification
//
// An answer to a request is never larger than 3 times the request. Every
// answer carries no payload and at most one short option: the server's own
// refusals are a 4-byte header, the request's token and at most a Max-Age
// or a Size1 option (at most 6 bytes), so at most 10 + TKL bytes against a
// request of at least 4 + TKL bytes, and 10 + TKL <= 3 × (4 + TKL); a Reset
// is 4 bytes, answering at least 4. go-coap's answers in a session are the
// same size or smaller: 2.04 and the handler's refusals, 2.31 Continue
// with a Block1 option (its request carried the same option and a block),
// 4.08, 4.13 with Size1, 5.03. Two checks enforce the bound at the socket,
// so that a future change cannot break it silently: an answer from the
// read loop is dropped if it exceeds 3 times its request (Server.send), and
// a session never sends more than 3 times the bytes it received
// (session.write). Responses are never sent twice on their own: go-coap
// resends a cached answer only when the request is received again.
//
// # Bounded work
//
// Per source address, the Limiter is asked for every datagram before
// anything else is done with it. The requests being handled are at most
// MaxInFlight, each in its own goroutine, so that a slow Ingest holds back
// neither other clients nor the read loop; beyond it requests get 5.03.
// Sessions are at most MaxSessions and end after SessionIdle without
// traffic; uploads being assembled are at most MaxTransfers, one per
// session, each at most MaxPayload bytes.
package coap
