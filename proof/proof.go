package proof

import (
	"context"
	"errors"
	"fmt"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// Reading is everything needed to check a stored reading end to end:
// the signed envelope, its inclusion in the gateway's log up to an anchored
// root, and ledger proofs, all against one recent state (Height), of that
// anchor and of the key and status the signer held at the height at which
// the gateway authenticated the reading (the anchor's height for entries
// of layout 1, which do not record it). Every record proved stays in the
// ledger's current state (anchors and device histories are never
// deleted), so a reading stays verifiable however many old versions of
// the state a node prunes (docs/readings.md).
type Reading struct {
	Gateway  string `json:"gateway"`
	Index    uint64 `json:"index"`
	Envelope []byte `json:"envelope,omitempty"` // the COSE_Sign1 reading envelope as the device sent it; absent when Withheld
	// EntryHash is the log's leaf hash of the entry, SHA-256(0x00 ‖
	// entry): what anyone can check is in the anchored log, whether or not
	// they may read the reading (VerifyAnchored).
	EntryHash []byte `json:"entry_hash,omitempty"`
	// Withheld says why Envelope (and Signer) are absent: the caller may
	// not read the reading (code "withheld"), or its value was erased
	// ("erased"). The entry's hash, inclusion and anchor proofs remain.
	Withheld *Unavailable `json:"withheld,omitempty"`
	// AuthHeight is the ledger height at which the gateway authenticated
	// the reading, recorded in its log entry (reading.EntryBytes); 0 for an
	// entry of layout 1, which is the envelope alone.
	AuthHeight int64 `json:"auth_height,omitempty"`
	// ReceivedAt is when the gateway received the envelope, Unix
	// milliseconds by its clock, recorded in its log entry (layout 3); 0
	// for entries of layouts 1 and 2, which do not record it.
	ReceivedAt int64 `json:"received_at,omitempty"`
	// Late is the gateway's flag, not part of the proof: a reading of the
	// envelope is dated more than the gateway's late age before it was
	// received (docs/readings.md, "Time").
	Late bool `json:"late,omitempty"`
	// ProofError says why no proof could be made (the reading is not
	// anchored yet, or the ledger lacks a record): the reading is still
	// returned, without the fields below. Err turns it into an error.
	ProofError *Unavailable  `json:"proof_error,omitempty"`
	Anchor     record.Anchor `json:"anchor"`    // the first anchor covering Index
	Inclusion  [][]byte      `json:"inclusion"` // RFC 6962 inclusion proof of the entry (reading.EntryBytes(AuthHeight, ReceivedAt, Envelope)) at Index in the log of Anchor.Size
	// Height is the state every ledger proof below is of; their root is the
	// app hash in the header of Height+1.
	Height int64 `json:"height,omitempty"`
	// AnchorProof proves the anchor record (key L/<gateway>/<size>).
	AnchorProof *record.Proof `json:"anchor_proof"`
	// Signer proves what the signer (the device, or its attesting gateway)
	// held at the authentication height.
	Signer *Signer `json:"signer"`
}

// Signer proves, from a device's history in the current state, the
// key and status it held at a past height: Event is its history event in
// force then (the last recorded at or before it, key h/<id>/<seq>), Next
// shows that no later event precedes the height: either the next event
// (h/<id>/<seq+1>, recorded after the height) or, when Event is the
// latest, the device's record (d/<id>) whose history count is seq.
type Signer struct {
	Event *record.Proof `json:"event"`
	Next  *record.Proof `json:"next"`
}

// Unavailable is why a stored reading has no proof.
type Unavailable struct {
	Code    string `json:"code"` // not_anchored, or unprovable
	Message string `json:"message"`
}

// ErrUnprovable is returned (wrapped) for a stored reading whose proof
// could not be made for another reason than not being anchored yet.
var ErrUnprovable = errors.New("reading cannot be proved")

// Err is the proof's error, nil if it has its proofs: wrapping
// ErrNotAnchored or ErrUnprovable.
func (p *Reading) Err() error {
	if p.ProofError == nil {
		return nil
	}
	if p.ProofError.Code == CodeNotAnchored {
		return fmt.Errorf("%w: %s", ErrNotAnchored, p.ProofError.Message)
	}
	return fmt.Errorf("%w: %s", ErrUnprovable, p.ProofError.Message)
}

const (
	CodeNotAnchored = "not_anchored"
	CodeUnprovable  = "unprovable"
	CodeWithheld    = "withheld" // Reading.Withheld: the caller may not read the value
	CodeErased      = "erased"   // Reading.Withheld: the value was erased (record.Erasure)
)

// ErrWithheld is returned (wrapped) by VerifyReading for a proof whose
// envelope is withheld: only VerifyAnchored applies to it.
var ErrWithheld = errors.New("reading withheld")

// Entry is the log entry the proof is about: the leaf is its hash.
func (p *Reading) Entry() []byte { return reading.EntryBytes(p.AuthHeight, p.ReceivedAt, p.Envelope) }

// Evidence is the proof as an agreement call carries it (the ledger checks
// it against the anchor on its own state): item is the reading's place in
// its envelope.
func (p *Reading) Evidence(item uint32) *record.ReadingEvidence {
	return &record.ReadingEvidence{Gateway: p.Gateway, Index: p.Index, Size: p.Anchor.Size, Envelope: p.Envelope,
		AuthHeight: p.AuthHeight, ReceivedAt: p.ReceivedAt, Inclusion: p.Inclusion, Item: item}
}

// SignerHeight is the height at which the signer must have been active
// with the key that signed.
func (p *Reading) SignerHeight() int64 {
	if p.AuthHeight != 0 {
		return p.AuthHeight
	}
	return p.Anchor.Height
}

// ErrNotAnchored is returned for a stored reading no anchor covers yet.
var ErrNotAnchored = errors.New("reading not anchored yet")

// Verified is what VerifyReading established.
type Verified struct {
	Envelope     *reading.Envelope
	AuthHeight   int64 // the signer was proved active, with the key that signed, at this height
	AnchorHeight int64 // the reading was anchored in this block
	HeaderHeight int64 // whose app hash is in this signed header
}

// Checker checks a ledger proof against a header it trusts and
// returns that header's height.
type Checker interface {
	CheckProof(ctx context.Context, p *record.Proof) (header int64, err error)
}

// VerifyReading checks a reading proof end to end, trusting only what
// check trusts: the anchor record against the app hash of the proof's
// height; the entry's inclusion under the anchored root; the signer rule
// (record.SignerKeyAt) from the signer's history proved in the same state:
// registered, active and holding the key that signed at the height the
// entry says the gateway authenticated the reading (before the anchor; the
// anchor's own height for entries of layout 1); and the signature.
func VerifyReading(ctx context.Context, check Checker, p *Reading) (*Verified, error) {
	if p.Withheld != nil {
		return nil, fmt.Errorf("%w (%s): %s; its place in the log can still be checked (VerifyAnchored)", ErrWithheld, p.Withheld.Code, p.Withheld.Message)
	}
	if p.Signer == nil && p.Err() == nil {
		return nil, errors.New("the proof lacks its ledger proofs")
	}
	an, err := VerifyAnchored(ctx, check, p)
	if err != nil {
		return nil, err
	}
	env, err := reading.Decode(p.Envelope)
	if err != nil {
		return nil, err
	}
	key, err := VerifySigner(p.AnchorProof.Root, p.Height, p.Signer, env.Signer(), p.SignerHeight())
	if err != nil {
		return nil, err
	}
	pub, err := identity.ParseDID(key)
	if err != nil {
		return nil, err
	}
	if err := env.Verify(pub); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return &Verified{Envelope: env, AuthHeight: p.SignerHeight(), AnchorHeight: an.AnchorHeight, HeaderHeight: an.HeaderHeight}, nil
}

// Anchored is what VerifyAnchored established.
type Anchored struct {
	EntryHash    []byte // the leaf hash proved included
	AnchorHeight int64  // the log was anchored in this block
	HeaderHeight int64  // whose app hash is in this signed header
}

// VerifyAnchored checks the public part of a reading proof, trusting only
// what check trusts: the anchor record against the app hash of the
// proof's height, and the entry's inclusion under the anchored root — of
// the entry itself when the envelope is present (its hash must then be
// EntryHash, if given), else of EntryHash. It does not check the signer
// or the signature (VerifyReading does).
func VerifyAnchored(ctx context.Context, check Checker, p *Reading) (*Anchored, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	if p.AnchorProof == nil {
		return nil, errors.New("the proof lacks its anchor proof")
	}
	if p.AnchorProof.Height != p.Height {
		return nil, fmt.Errorf("the anchor proof is of height %d, not the proof's height %d", p.AnchorProof.Height, p.Height)
	}
	if string(p.AnchorProof.Key) != string(record.AnchorAtKey(p.Gateway, p.Anchor.Size)) {
		return nil, errors.New("the anchor proof is of another key")
	}
	header, err := check.CheckProof(ctx, p.AnchorProof)
	if err != nil {
		return nil, fmt.Errorf("anchor: %w", err)
	}
	var a record.Anchor
	if err := record.Unmarshal(p.AnchorProof.Value, &a); err != nil {
		return nil, fmt.Errorf("anchor record: %w", err)
	}
	if a.Size != p.Anchor.Size || string(a.Root) != string(p.Anchor.Root) || a.Gateway != p.Gateway || a.Height != p.Anchor.Height {
		return nil, errors.New("the anchor in the proof differs from the one on the ledger")
	}
	if p.AuthHeight < 0 || (p.AuthHeight != 0 && p.AuthHeight >= a.Height) {
		return nil, fmt.Errorf("the entry says it was authenticated at height %d, not before its anchor at height %d", p.AuthHeight, a.Height)
	}
	if p.ReceivedAt < 0 || (p.ReceivedAt != 0 && p.AuthHeight == 0) {
		return nil, fmt.Errorf("the entry's receive time %d needs an authentication height (layout 3)", p.ReceivedAt)
	}
	leaf := p.EntryHash
	if p.Envelope != nil {
		h := LeafHash(p.Entry())
		if leaf != nil && string(leaf) != string(h) {
			return nil, fmt.Errorf("the entry hash %x is not the hash of the entry (%x)", leaf, h)
		}
		leaf = h
	}
	if leaf == nil {
		return nil, errors.New("the proof has neither the entry nor its hash")
	}
	if err := VerifyLeafInclusion(leaf, p.Index, a.Size, p.Inclusion, a.Root); err != nil {
		return nil, fmt.Errorf("inclusion in the anchored log: %w", err)
	}
	return &Anchored{EntryHash: leaf, AnchorHeight: a.Height, HeaderHeight: header}, nil
}

// VerifySigner checks a Signer of the state of height proofHeight
// against root (that state's app hash, already trusted) and applies the
// signer rule: it returns the key id held at height if it was registered
// and active then.
func VerifySigner(root []byte, proofHeight int64, sp *Signer, id string, height int64) (string, error) {
	if sp == nil || sp.Event == nil || sp.Next == nil {
		return "", errors.New("the signer proof is incomplete")
	}
	for _, q := range []*record.Proof{sp.Event, sp.Next} {
		if q.Height != proofHeight || string(q.Root) != string(root) {
			return "", fmt.Errorf("the signer proof of %q is of another state than the anchor's", q.Key)
		}
		if q.Value == nil {
			return "", fmt.Errorf("the signer proof of %q shows no record", q.Key)
		}
		if err := record.VerifyProof(root, q.Key, q.Value, q.Proof); err != nil {
			return "", fmt.Errorf("signer record: %w", err)
		}
	}
	var held record.Event
	if err := record.Unmarshal(sp.Event.Value, &held); err != nil {
		return "", fmt.Errorf("the signer's history event: %w", err)
	}
	if string(sp.Event.Key) != string(record.HistoryKey(id, held.Seq)) {
		return "", fmt.Errorf("the signer's history event is not one of %s's", id)
	}
	if held.Height > height {
		// The first event is its registration: not registered yet.
		if held.Seq == 1 {
			return record.SignerKeyAt(id, height, nil)
		}
		return "", fmt.Errorf("the signer's history event %d is of height %d, after the authentication height %d", held.Seq, held.Height, height)
	}
	switch string(sp.Next.Key) {
	case string(record.HistoryKey(id, held.Seq+1)):
		var next record.Event
		if err := record.Unmarshal(sp.Next.Value, &next); err != nil {
			return "", fmt.Errorf("the signer's next history event: %w", err)
		}
		if next.Seq != held.Seq+1 || next.Height <= height {
			return "", fmt.Errorf("%s's history event %d is not the one in force at height %d (event %d follows at height %d)", id, held.Seq, height, next.Seq, next.Height)
		}
	case string(record.DeviceKey(id)):
		var d record.Device
		if err := record.Unmarshal(sp.Next.Value, &d); err != nil {
			return "", fmt.Errorf("the signer's record: %w", err)
		}
		if d.ID != id || d.History != held.Seq {
			return "", fmt.Errorf("%s's history event %d is not its latest (its record counts %d)", id, held.Seq, d.History)
		}
	default:
		return "", errors.New("the signer proof's second record is neither the next history event nor the device record")
	}
	return record.SignerKeyAt(id, height, &held)
}
