package record

// Status is a device's lifecycle state.
type Status string

// Device statuses. Revoked is final.
const (
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
	StatusRevoked   Status = "revoked"
)

// Org is an organisation (a tenant) and its admins.
type Org struct {
	ID      string   `cbor:"1,keyasint" json:"id"`
	Name    string   `cbor:"2,keyasint,omitempty" json:"name,omitempty"`
	Admins  []string `cbor:"3,keyasint" json:"admins"` // did:keys, sorted
	Created int64    `cbor:"4,keyasint" json:"created"`
	Devices uint64   `cbor:"5,keyasint" json:"devices"` // number ever registered
}

// IsAdmin reports whether id is an admin of the organisation.
func (o *Org) IsAdmin(id string) bool {
	for _, a := range o.Admins {
		if a == id {
			return true
		}
	}
	return false
}

// Device is a thing: its id (the did:key of its first key), its current key,
// owner, status and metadata.
type Device struct {
	ID         string            `cbor:"1,keyasint" json:"id"`
	Org        string            `cbor:"2,keyasint" json:"org"`
	Key        string            `cbor:"3,keyasint" json:"key"` // current key, did:key
	Status     Status            `cbor:"4,keyasint" json:"status"`
	Class      string            `cbor:"5,keyasint,omitempty" json:"class,omitempty"`
	Firmware   string            `cbor:"6,keyasint,omitempty" json:"firmware,omitempty"`
	Labels     map[string]string `cbor:"7,keyasint,omitempty" json:"labels,omitempty"`
	Registered int64             `cbor:"8,keyasint" json:"registered"`
	Updated    int64             `cbor:"9,keyasint" json:"updated"`
	History    uint64            `cbor:"10,keyasint" json:"history"`                         // number of history entries
	AttestedBy string            `cbor:"11,keyasint,omitempty" json:"attested_by,omitempty"` // gateway that signs its readings
}

// Event is one entry of a device's history.
type Event struct {
	Seq    uint64 `cbor:"1,keyasint" json:"seq"`
	Height int64  `cbor:"2,keyasint" json:"height"`
	Tx     []byte `cbor:"3,keyasint" json:"tx"` // hash of the tx that made the change
	Kind   string `cbor:"4,keyasint" json:"kind"`
	Signer string `cbor:"5,keyasint" json:"signer"`
	Status Status `cbor:"6,keyasint" json:"status"` // status after the change
	Note   string `cbor:"7,keyasint,omitempty" json:"note,omitempty"`
	// Key is the device's key after the change (did:key). With Status it
	// says what the device held from Height on, so that a signature made
	// at any height stays checkable from the current state (HistoryAt).
	Key string `cbor:"8,keyasint,omitempty" json:"key,omitempty"`
}

// Grant lets a subject perform an action on a resource.
type Grant struct {
	ID       uint64 `cbor:"1,keyasint" json:"id"`
	Grantor  string `cbor:"2,keyasint" json:"grantor"`
	Subject  string `cbor:"3,keyasint" json:"subject"`
	Action   string `cbor:"4,keyasint" json:"action"`
	Resource string `cbor:"5,keyasint" json:"resource"`
	Expiry   int64  `cbor:"6,keyasint,omitempty" json:"expiry,omitempty"`
	Quota    uint64 `cbor:"7,keyasint,omitempty" json:"quota,omitempty"`
	Created  int64  `cbor:"8,keyasint" json:"created"`
	Signer   string `cbor:"9,keyasint" json:"signer"`
	Revoked  int64  `cbor:"10,keyasint,omitempty" json:"revoked,omitempty"` // height of revocation; 0 = in force
}

// ActiveAt reports whether the grant holds at the given height.
func (g *Grant) ActiveAt(height int64) bool {
	return g.Revoked == 0 && (g.Expiry == 0 || height <= g.Expiry)
}

// Validator is a member of the validator set as the application tracks it.
type Validator struct {
	PubKey []byte `cbor:"1,keyasint" json:"pub_key"` // Ed25519
	Power  int64  `cbor:"2,keyasint" json:"power"`
}

// Anchor is a gateway's data log as last anchored: its size and RFC 6962
// root. Every past anchor stays under its own key, so a reading can be
// proven against the anchor that first covered it.
type Anchor struct {
	Gateway string `cbor:"1,keyasint" json:"gateway"`
	Size    uint64 `cbor:"2,keyasint" json:"size"`
	Root    []byte `cbor:"3,keyasint" json:"root"`
	Height  int64  `cbor:"4,keyasint" json:"height"`
	Count   uint64 `cbor:"5,keyasint" json:"count"` // anchors so far
}

// ActionManage is the grant action that lets a subject manage another
// organisation's device (status and metadata).
const ActionManage = "manage"
