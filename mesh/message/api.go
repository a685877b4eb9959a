package message

// The JSON of a gateway's mesh API (mesh.MountAPI): GET /v1/mesh and the
// mailbox endpoints.

// MeshInfo is GET /v1/mesh.
type MeshInfo struct {
	ID     string   `json:"id"`      // the gateway's device id
	PeerID string   `json:"peer_id"` // its libp2p peer id (its key)
	Addrs  []string `json:"addrs"`   // multiaddrs with /p2p/
	Relay  bool     `json:"relay"`
	Stats  Stats    `json:"stats"`
}

// Stats is a snapshot of a node's counters, for metrics.
type Stats struct {
	Peers          int
	Received       uint64
	Delivered      uint64
	Sent           uint64
	Refused        map[string]uint64 // by status
	MDNSFound      uint64
	Bans           uint64
	Wakes          uint64
	WakesDenied    map[string]uint64 // by reason
	MailboxStored  uint64
	MailboxDropped uint64
	MailboxPulled  uint64
	MailboxDepth   uint64 // messages held now
	MailboxBytes   uint64
}

// DepositResponse answers POST /v1/mailbox/{device}.
type DepositResponse struct {
	Result
	StatusName string `json:"status_name"`
	Receipt    []byte `json:"receipt"` // the gateway's signed receipt (COSE_Sign1), base64 in JSON
}

// HeldMessage is one message in GET /v1/mailbox/{device}.
type HeldMessage struct {
	Seq      uint64 `json:"seq"`
	Envelope []byte `json:"envelope"` // the signed message, base64 in JSON
}

// Held answers GET /v1/mailbox/{device}.
type Held struct {
	Messages []HeldMessage `json:"messages"`
	More     bool          `json:"more"`
}
