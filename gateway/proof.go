package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// ReadingProof is everything needed to check a stored reading end to end:
// the signed envelope, its inclusion in the gateway's log up to an anchored
// root, and ledger proofs, all against one recent state (Height), of that
// anchor and of the key and status the signer held at the height at which
// the gateway authenticated the reading (the anchor's height for entries
// of layout 1, which do not record it). Every record proved stays in the
// ledger's current state (anchors and device histories are never
// deleted), so a reading stays verifiable however many old versions of
// the state a node prunes (docs/readings.md).
type ReadingProof struct {
	Gateway  string `json:"gateway"`
	Index    uint64 `json:"index"`
	Envelope []byte `json:"envelope"` // the COSE_Sign1 reading envelope as the device sent it
	// AuthHeight is the ledger height at which the gateway authenticated
	// the reading, recorded in its log entry (reading.EntryBytes); 0 for an
	// entry of layout 1, which is the envelope alone.
	AuthHeight int64 `json:"auth_height,omitempty"`
	// ProofError says why no proof could be made (the reading is not
	// anchored yet, or the ledger lacks a record): the reading is still
	// returned, without the fields below. Err turns it into an error.
	ProofError *ProofError   `json:"proof_error,omitempty"`
	Anchor     record.Anchor `json:"anchor"`    // the first anchor covering Index
	Inclusion  [][]byte      `json:"inclusion"` // RFC 6962 inclusion proof of the entry (reading.EntryBytes(AuthHeight, Envelope)) at Index in the log of Anchor.Size
	// Height is the state every ledger proof below is of; their root is the
	// app hash in the header of Height+1.
	Height int64 `json:"height,omitempty"`
	// AnchorProof proves the anchor record (key L/<gateway>/<size>).
	AnchorProof *record.Proof `json:"anchor_proof"`
	// Signer proves what the signer (the device, or its attesting gateway)
	// held at the authentication height.
	Signer *SignerProof `json:"signer"`
}

// SignerProof proves, from a device's history in the current state, the
// key and status it held at a past height: Event is its history event in
// force then (the last recorded at or before it, key h/<id>/<seq>), Next
// shows that no later event precedes the height: either the next event
// (h/<id>/<seq+1>, recorded after the height) or, when Event is the
// latest, the device's record (d/<id>) whose history count is seq.
type SignerProof struct {
	Event *record.Proof `json:"event"`
	Next  *record.Proof `json:"next"`
}

// ProofError is why a stored reading has no proof.
type ProofError struct {
	Code    string `json:"code"` // not_anchored, or unprovable
	Message string `json:"message"`
}

// ErrUnprovable is returned (wrapped) for a stored reading whose proof
// could not be made for another reason than not being anchored yet.
var ErrUnprovable = errors.New("reading cannot be proved")

// Err is the proof's error, nil if it has its proofs: wrapping
// ErrNotAnchored or ErrUnprovable.
func (p *ReadingProof) Err() error {
	if p.ProofError == nil {
		return nil
	}
	if p.ProofError.Code == codeNotAnchored {
		return fmt.Errorf("%w: %s", ErrNotAnchored, p.ProofError.Message)
	}
	return fmt.Errorf("%w: %s", ErrUnprovable, p.ProofError.Message)
}

const (
	codeNotAnchored = "not_anchored"
	codeUnprovable  = "unprovable"
)

// Entry is the log entry the proof is about: the leaf is its hash.
func (p *ReadingProof) Entry() []byte { return reading.EntryBytes(p.AuthHeight, p.Envelope) }

// Evidence is the proof as an agreement call carries it (the ledger checks
// it against the anchor on its own state): item is the reading's place in
// its envelope.
func (p *ReadingProof) Evidence(item uint32) *record.ReadingEvidence {
	return &record.ReadingEvidence{Gateway: p.Gateway, Index: p.Index, Size: p.Anchor.Size, Envelope: p.Envelope,
		AuthHeight: p.AuthHeight, Inclusion: p.Inclusion, Item: item}
}

// signerHeight is the height at which the signer must have been active
// with the key that signed.
func (p *ReadingProof) signerHeight() int64 {
	if p.AuthHeight != 0 {
		return p.AuthHeight
	}
	return p.Anchor.Height
}

// ErrNotAnchored is returned for a stored reading no anchor covers yet.
var ErrNotAnchored = errors.New("reading not anchored yet")

// ErrNoEntry is returned for an index beyond the gateway's log.
var ErrNoEntry = errors.New("no such log entry")

// Prove builds the proof of the envelope at index, against the latest
// committed state; the error wraps ErrNotAnchored or ErrUnprovable when the
// reading is stored but its proof cannot be made (Reading answers it then).
func (g *Gateway) Prove(app *ledger.App, index uint64) (*ReadingProof, error) {
	p, err := g.Reading(app, index)
	if err != nil {
		return nil, err
	}
	return p, p.Err()
}

// Reading returns the stored reading at index with its proof, against the
// latest committed state, or with ProofError set when the proof cannot be
// made; the error is for an entry that cannot be read (ErrNoEntry beyond
// the log).
func (g *Gateway) Reading(app *ledger.App, index uint64) (*ReadingProof, error) {
	if size := g.data.Size(); index >= size {
		return nil, fmt.Errorf("%w: entry %d (the log has %d entries)", ErrNoEntry, index, size)
	}
	raw, err := g.data.Entry(index)
	if err != nil {
		return nil, err
	}
	e, err := reading.DecodeEntry(raw)
	if err != nil {
		return nil, fmt.Errorf("log entry %d: %w", index, err)
	}
	p := &ReadingProof{Gateway: g.id, Index: index, Envelope: e.Envelope.Raw, AuthHeight: e.AuthHeight}
	if err := g.prove(app, p, e.Envelope.Signer()); err != nil {
		code := codeUnprovable
		if errors.Is(err, ErrNotAnchored) {
			code = codeNotAnchored
		}
		return &ReadingProof{Gateway: p.Gateway, Index: index, Envelope: p.Envelope, AuthHeight: p.AuthHeight,
			ProofError: &ProofError{Code: code, Message: err.Error()}}, nil
	}
	return p, nil
}

// prove fills p's anchor, inclusion and ledger proofs, all of one state.
func (g *Gateway) prove(app *ledger.App, p *ReadingProof, signer string) error {
	st, err := app.View(0)
	if err != nil {
		return err
	}
	a, err := st.AnchorCovering(g.id, p.Index)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("%w: entry %d (the log has %d entries; anchors follow within a block or two)", ErrNotAnchored, p.Index, g.data.Size())
	}
	if err != nil {
		return err
	}
	p.Anchor = *a
	incl, err := g.data.InclusionProof(p.Index, a.Size)
	if err != nil {
		return err
	}
	for _, h := range incl {
		p.Inclusion = append(p.Inclusion, h[:])
	}
	p.Height = st.Height
	if p.AnchorProof, err = app.Prove(record.AnchorAtKey(g.id, a.Size), st.Height); err != nil {
		return fmt.Errorf("proving the anchor of size %d: %w", a.Size, err)
	}
	p.Signer, err = ProveSigner(app, st, signer, p.signerHeight())
	return err
}

// ProveSigner proves from st (a committed state of app) what id held at
// height: its history event in force then and the proof that no later one
// precedes it (SignerProof).
func ProveSigner(app *ledger.App, st *ledger.State, id string, height int64) (*SignerProof, error) {
	held, d, err := st.HistoryAt(id, height)
	if err != nil {
		return nil, fmt.Errorf("the history of %s: %w", id, err)
	}
	if held == nil {
		return nil, fmt.Errorf("%s was not registered at height %d", id, height)
	}
	sp := &SignerProof{}
	if sp.Event, err = app.Prove(record.HistoryKey(id, held.Seq), st.Height); err != nil {
		return nil, fmt.Errorf("proving %s's history event %d: %w", id, held.Seq, err)
	}
	next := record.DeviceKey(id)
	if held.Seq < d.History {
		next = record.HistoryKey(id, held.Seq+1)
	}
	if sp.Next, err = app.Prove(next, st.Height); err != nil {
		return nil, fmt.Errorf("proving what follows %s's history event %d: %w", id, held.Seq, err)
	}
	return sp, nil
}

// VerifiedReading is what VerifyReading established.
type VerifiedReading struct {
	Envelope     *reading.Envelope
	AuthHeight   int64 // the signer was proved active, with the key that signed, at this height
	AnchorHeight int64 // the reading was anchored in this block
	HeaderHeight int64 // whose app hash is in this signed header
}

// ProofChecker checks a ledger proof against a header it trusts and
// returns that header's height.
type ProofChecker interface {
	CheckProof(ctx context.Context, p *record.Proof) (header int64, err error)
}

// NodeChecker checks proofs against headers signed by more than 2/3 of the
// validator set a node reports (client.Client.VerifyProof). A device that must
// trust no node uses a light client instead (lightclient.Client).
type NodeChecker struct {
	Client  *client.Client
	ChainID string
}

// CheckProof implements ProofChecker.
func (n NodeChecker) CheckProof(ctx context.Context, p *record.Proof) (int64, error) {
	v, err := n.Client.VerifyProof(ctx, n.ChainID, p)
	if err != nil {
		return 0, err
	}
	return v.Header, nil
}

// VerifyReading is VerifyReadingWith a NodeChecker over c.
func VerifyReading(ctx context.Context, c *client.Client, chainID string, p *ReadingProof) (*VerifiedReading, error) {
	return VerifyReadingWith(ctx, NodeChecker{Client: c, ChainID: chainID}, p)
}

// VerifyReadingWith checks a reading proof end to end, trusting only what
// check trusts: the anchor record against the app hash of the proof's
// height; the entry's inclusion under the anchored root; the signer rule
// (record.SignerKeyAt) from the signer's history proved in the same state:
// registered, active and holding the key that signed at the height the
// entry says the gateway authenticated the reading (before the anchor; the
// anchor's own height for entries of layout 1); and the signature.
func VerifyReadingWith(ctx context.Context, check ProofChecker, p *ReadingProof) (*VerifiedReading, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	if p.AnchorProof == nil || p.Signer == nil {
		return nil, errors.New("the proof lacks its ledger proofs")
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
	if len(a.Root) != 32 {
		return nil, errors.New("anchored root is not 32 bytes")
	}
	incl := make([][32]byte, len(p.Inclusion))
	for i, h := range p.Inclusion {
		if len(h) != 32 {
			return nil, fmt.Errorf("inclusion hash %d is %d bytes", i, len(h))
		}
		incl[i] = [32]byte(h)
	}
	if err := datalog.VerifyInclusion(p.Entry(), p.Index, a.Size, incl, [32]byte(a.Root)); err != nil {
		return nil, fmt.Errorf("inclusion in the anchored log: %w", err)
	}
	env, err := reading.Decode(p.Envelope)
	if err != nil {
		return nil, err
	}
	key, err := VerifySigner(p.AnchorProof.Root, p.Height, p.Signer, env.Signer(), p.signerHeight())
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
	return &VerifiedReading{Envelope: env, AuthHeight: p.signerHeight(), AnchorHeight: a.Height, HeaderHeight: header}, nil
}

// VerifySigner checks a SignerProof of the state of height proofHeight
// against root (that state's app hash, already trusted) and applies the
// signer rule: it returns the key id held at height if it was registered
// and active then.
func VerifySigner(root []byte, proofHeight int64, sp *SignerProof, id string, height int64) (string, error) {
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

// FetchReading asks a node's API (GET /v1/readings/{index}) for a stored
// reading of its gateway with its proof; p.Err() says whether the proof
// could be made (ErrNotAnchored: ask again in a block or two).
func FetchReading(ctx context.Context, c *client.Client, index uint64) (*ReadingProof, error) {
	var p ReadingProof
	if err := c.Get(ctx, "/v1/readings/"+strconv.FormatUint(index, 10), &p); err != nil {
		return nil, fmt.Errorf("reading %d at %s: %w", index, c.BaseURL, err)
	}
	if p.Index != index {
		return nil, fmt.Errorf("reading %d at %s: the answer is of entry %d", index, c.BaseURL, p.Index)
	}
	return &p, nil
}

// WaitProof fetches the reading at index until it has its proof: while it
// is not anchored yet it asks again every poll, until ctx ends.
func WaitProof(ctx context.Context, c *client.Client, index uint64, poll time.Duration) (*ReadingProof, error) {
	for {
		p, err := FetchReading(ctx, c, index)
		if err == nil {
			err = p.Err()
		}
		if !errors.Is(err, ErrNotAnchored) {
			return p, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("reading %d: %w (%w)", index, err, ctx.Err())
		case <-time.After(poll):
		}
	}
}
