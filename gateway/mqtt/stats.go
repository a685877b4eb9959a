package mqtt

import (
	"sync/atomic"

	"github.com/thingnet/thingnet/gateway/edge"
)

// Reasons a connection is refused (keys of Stats.ConnectionsRefused).
const (
	RefusedRateLimited    = "rate_limited"    // AllowConnect said no (source or device)
	RefusedBadCredentials = "bad_credentials" // bad username, missing, forged or expired token
	RefusedNotAuthorized  = "not_authorized"  // unknown, suspended or revoked device
	RefusedClientID       = "client_id"       // client id is neither empty nor the device id
	RefusedUnavailable    = "unavailable"     // the Authenticator failed (ledger unavailable)
	RefusedServerBusy     = "server_busy"     // MaxClients reached
)

// Reasons a reading is refused (keys of Stats.ReadingsRefused).
const (
	ReadingACL         = "acl"          // published to a topic other than its own readings topic
	ReadingRateLimited = "rate_limited" // AllowMessage said no
	ReadingRejected    = "rejected"     // the Ingestor rejected it (edge.ErrRejected)
	ReadingOverloaded  = "overloaded"   // edge.ErrOverloaded, or not stored within IngestTimeout
	ReadingError       = "error"        // any other Ingestor error
)

// Rate limits (keys of Stats.RateLimited).
const (
	LimitConnectSource = "connect_source" // AllowConnect on the source address
	LimitConnectDevice = "connect_device" // AllowConnect on the device id
	LimitMessage       = "message"        // AllowMessage on a PUBLISH
	LimitControl       = "control"        // AllowMessage on a SUBSCRIBE or UNSUBSCRIBE (the connection is closed)
)

// Stats are the broker's counters since Start. Every map holds every key
// its constants name, zeros included.
type Stats struct {
	ConnectionsAccepted uint64            // sessions established (CONNACK success sent)
	ConnectionsRefused  map[string]uint64 // by Refused* reason
	ReadingsAccepted    uint64            // readings Ingest stored (duplicates included)
	ReadingsDuplicate   uint64            // of which already stored (edge.ErrDuplicate)
	ReadingsRefused     map[string]uint64 // by Reading* reason
	RateLimited         map[string]uint64 // by Limit* limit
	SubscribesAccepted  uint64            // topic filters granted
	SubscribesRefused   uint64            // topic filters refused by the ACL or invalid
	PacketsTooLarge     uint64            // connections closed for a packet above MaxPacket
}

// counters are the live values behind Stats.
type counters struct {
	connAccepted, readingsAccepted, readingsDuplicate atomic.Uint64
	subsAccepted, subsRefused, tooLarge               atomic.Uint64

	connRefused, readingsRefused, rateLimited *edge.Tally
}

func newCounters() *counters {
	return &counters{
		connRefused: edge.NewTally(RefusedRateLimited, RefusedBadCredentials, RefusedNotAuthorized,
			RefusedClientID, RefusedUnavailable, RefusedServerBusy),
		readingsRefused: edge.NewTally(ReadingACL, ReadingRateLimited, ReadingRejected, ReadingOverloaded, ReadingError),
		rateLimited:     edge.NewTally(LimitConnectSource, LimitConnectDevice, LimitMessage, LimitControl),
	}
}

func (c *counters) snapshot() Stats {
	return Stats{
		ConnectionsAccepted: c.connAccepted.Load(),
		ConnectionsRefused:  c.connRefused.Snapshot(),
		ReadingsAccepted:    c.readingsAccepted.Load(),
		ReadingsDuplicate:   c.readingsDuplicate.Load(),
		ReadingsRefused:     c.readingsRefused.Snapshot(),
		RateLimited:         c.rateLimited.Snapshot(),
		SubscribesAccepted:  c.subsAccepted.Load(),
		SubscribesRefused:   c.subsRefused.Load(),
		PacketsTooLarge:     c.tooLarge.Load(),
	}
}
