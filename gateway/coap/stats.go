package coap

import (
	"sync/atomic"

	"github.com/thingnet/thingnet/gateway/edge"
)

// Reasons a request is answered with an error (keys of Stats.Refused).
const (
	RefusedRateLimited   = "rate_limited"   // 4.29: the source address is over its rate (Limiter)
	RefusedTooLarge      = "too_large"      // 4.13: payload or announced size above MaxPayload
	RefusedNotFound      = "not_found"      // 4.04: not PathShort nor PathLong
	RefusedMethod        = "method"         // 4.05: not POST
	RefusedContentFormat = "content_format" // 4.15: a Content-Format other than application/cose (18)
	RefusedBadOption     = "bad_option"     // 4.02: an unrecognised critical option
	RefusedBadRequest    = "bad_request"    // 4.00: an empty payload or a bad Block1 option
	RefusedIncomplete    = "incomplete"     // 4.08: a later Block1 block of no upload the server knows
	RefusedProxy         = "proxy"          // 5.05: a proxy request
	RefusedRejected      = "rejected"       // 4.00: the Ingestor rejected the reading (edge.ErrRejected)
	RefusedOverloaded    = "overloaded"     // 5.03: the Ingestor is overloaded or too slow (IngestTimeout)
	RefusedBusy          = "busy"           // 5.03: MaxInFlight, MaxSessions or MaxTransfers reached
	RefusedError         = "error"          // 5.00: the Ingestor failed otherwise
)

// Reasons a datagram is dropped or answered with a Reset (keys of
// Stats.Dropped).
const (
	DroppedMalformed     = "malformed"     // not CoAP; a confirmable one with a readable header gets a Reset
	DroppedPing          = "ping"          // an empty confirmable message, answered with a Reset
	DroppedNotRequest    = "not_request"   // an ACK, a Reset, an empty non-confirmable message or a response
	DroppedRateLimited   = "rate_limited"  // a non-request over its source's rate
	DroppedDuplicate     = "duplicate"     // a retransmission of a request still being handled
	DroppedAmplification = "amplification" // an answer the 3× bound did not allow (a bug if ever seen)
)

// Stats are the server's counters since Start. Refused and Dropped hold
// every key their constants name, zeros included.
type Stats struct {
	Datagrams  uint64            // datagrams received
	Accepted   uint64            // readings answered 2.04 (duplicates included)
	Duplicates uint64            // of which the Ingestor had already stored (edge.ErrDuplicate)
	Refused    map[string]uint64 // requests answered with an error, by Refused* reason
	Dropped    map[string]uint64 // datagrams not answered, or answered with a Reset, by Dropped* reason
	Sessions   int               // client endpoints the server holds state for
	Transfers  int               // block-wise uploads being assembled
	InFlight   int               // requests being handled
}

// counters are the live values behind Stats.
type counters struct {
	datagrams, accepted, duplicates atomic.Uint64
	refused, dropped                *edge.Tally
}

func newCounters() *counters {
	return &counters{
		refused: edge.NewTally(RefusedRateLimited, RefusedTooLarge, RefusedNotFound, RefusedMethod,
			RefusedContentFormat, RefusedBadOption, RefusedBadRequest, RefusedIncomplete, RefusedProxy, RefusedRejected,
			RefusedOverloaded, RefusedBusy, RefusedError),
		dropped: edge.NewTally(DroppedMalformed, DroppedPing, DroppedNotRequest, DroppedRateLimited,
			DroppedDuplicate, DroppedAmplification),
	}
}
