package mqtt

import "sync/atomic"

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
	ReadingRejected    = "rejected"     // the Ingestor rejected it (ErrRejected)
	ReadingOverloaded  = "overloaded"   // ErrOverloaded, or not stored within IngestTimeout
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
	ReadingsDuplicate   uint64            // of which already stored (ErrDuplicate)
	ReadingsRefused     map[string]uint64 // by Reading* reason
	RateLimited         map[string]uint64 // by Limit* limit
	SubscribesAccepted  uint64            // topic filters granted
	SubscribesRefused   uint64            // topic filters refused by the ACL or invalid
	PacketsTooLarge     uint64            // connections closed for a packet above MaxPacket
}

// tally counts events by a fixed set of keys, without locks.
type tally struct {
	keys []string
	n    []atomic.Uint64
}

func newTally(keys ...string) *tally {
	return &tally{keys: keys, n: make([]atomic.Uint64, len(keys))}
}

// add counts one event of key, which must be one of t's keys.
func (t *tally) add(key string) {
	for i, k := range t.keys {
		if k == key {
			t.n[i].Add(1)
			return
		}
	}
	panic("mqtt: no counter " + key) // a programming error: keys are this package's constants
}

func (t *tally) snapshot() map[string]uint64 {
	m := make(map[string]uint64, len(t.keys))
	for i, k := range t.keys {
		m[k] = t.n[i].Load()
	}
	return m
}

// counters are the live values behind Stats.
type counters struct {
	connAccepted, readingsAccepted, readingsDuplicate atomic.Uint64
	subsAccepted, subsRefused, tooLarge               atomic.Uint64

	connRefused, readingsRefused, rateLimited *tally
}

func newCounters() *counters {
	return &counters{
		connRefused: newTally(RefusedRateLimited, RefusedBadCredentials, RefusedNotAuthorized,
			RefusedClientID, RefusedUnavailable, RefusedServerBusy),
		readingsRefused: newTally(ReadingACL, ReadingRateLimited, ReadingRejected, ReadingOverloaded, ReadingError),
		rateLimited:     newTally(LimitConnectSource, LimitConnectDevice, LimitMessage, LimitControl),
	}
}

func (c *counters) snapshot() Stats {
	return Stats{
		ConnectionsAccepted: c.connAccepted.Load(),
		ConnectionsRefused:  c.connRefused.snapshot(),
		ReadingsAccepted:    c.readingsAccepted.Load(),
		ReadingsDuplicate:   c.readingsDuplicate.Load(),
		ReadingsRefused:     c.readingsRefused.snapshot(),
		RateLimited:         c.rateLimited.snapshot(),
		SubscribesAccepted:  c.subsAccepted.Load(),
		SubscribesRefused:   c.subsRefused.Load(),
		PacketsTooLarge:     c.tooLarge.Load(),
	}
}
