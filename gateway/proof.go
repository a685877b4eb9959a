package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/reading"
)

// ReadingProof is everything needed to check a stored reading end to end:
// the signed envelope, its inclusion in the gateway's log up to an anchored
// root, and the ledger proofs of that anchor and of the signer's record at
// the height at which the gateway authenticated the reading (the anchor's
// height for entries of layout 1, which do not record it).
type ReadingProof struct {
	Gateway  string `json:"gateway"`
	Index    uint64 `json:"index"`
	Envelope []byte `json:"envelope"` // the COSE_Sign1 reading envelope as the device sent it
	// AuthHeight is the ledger height at which the gateway authenticated
	// the reading, recorded in its log entry (reading.EntryBytes); 0 for an
	// entry of layout 1, which is the envelope alone.
	AuthHeight int64         `json:"auth_height,omitempty"`
	Anchor     ledger.Anchor `json:"anchor"`    // the first anchor covering Index
	Inclusion  [][]byte      `json:"inclusion"` // RFC 6962 inclusion proof of the entry (reading.EntryBytes(AuthHeight, Envelope)) at Index in the log of Anchor.Size
	// AnchorProof proves the anchor record (key L/<gateway>/<size>) in the
	// state after block Anchor.Height.
	AnchorProof *ledger.Proof `json:"anchor_proof"`
	// SignerProof proves the record of the device (or of its attesting
	// gateway) in the state after block AuthHeight (Anchor.Height for
	// layout 1): active, with the key that signed.
	SignerProof *ledger.Proof `json:"signer_proof"`
}

// Entry is the log entry the proof is about: the leaf is its hash.
func (p *ReadingProof) Entry() []byte { return reading.EntryBytes(p.AuthHeight, p.Envelope) }

// Evidence is the proof as an agreement call carries it (the ledger checks
// it against the anchor on its own state): item is the reading's place in
// its envelope.
func (p *ReadingProof) Evidence(item uint32) *ledger.ReadingEvidence {
	return &ledger.ReadingEvidence{Gateway: p.Gateway, Index: p.Index, Size: p.Anchor.Size, Envelope: p.Envelope,
		AuthHeight: p.AuthHeight, Inclusion: p.Inclusion, Item: item}
}

// signerHeight is the height at which the signer's record must be proved.
func (p *ReadingProof) signerHeight() int64 {
	if p.AuthHeight != 0 {
		return p.AuthHeight
	}
	return p.Anchor.Height
}

// ErrNotAnchored is returned for a stored reading no anchor covers yet.
var ErrNotAnchored = errors.New("reading not anchored yet")

// Prove builds the proof of the envelope at index.
func (g *Gateway) Prove(app *ledger.App, index uint64) (*ReadingProof, error) {
	raw, err := g.data.Entry(index)
	if err != nil {
		return nil, err
	}
	e, err := reading.DecodeEntry(raw)
	if err != nil {
		return nil, fmt.Errorf("log entry %d: %w", index, err)
	}
	env := e.Envelope
	st, err := app.View(0)
	if err != nil {
		return nil, err
	}
	a, err := st.AnchorCovering(g.id, index)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("%w: entry %d (the log has %d entries; anchors follow within a block or two)", ErrNotAnchored, index, g.data.Size())
	}
	if err != nil {
		return nil, err
	}
	incl, err := g.data.InclusionProof(index, a.Size)
	if err != nil {
		return nil, err
	}
	p := &ReadingProof{Gateway: g.id, Index: index, Envelope: env.Raw, AuthHeight: e.AuthHeight, Anchor: *a}
	for _, h := range incl {
		p.Inclusion = append(p.Inclusion, h[:])
	}
	if p.AnchorProof, err = app.Prove(ledger.AnchorAtKey(g.id, a.Size), a.Height); err != nil {
		return nil, fmt.Errorf("proving the anchor at height %d: %w", a.Height, err)
	}
	signer := env.Device
	if env.Attester != "" {
		signer = env.Attester
	}
	if p.SignerProof, err = app.Prove(ledger.DeviceKey(signer), p.signerHeight()); err != nil {
		return nil, fmt.Errorf("proving %s's record at height %d: %w", signer, p.signerHeight(), err)
	}
	return p, nil
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
	CheckProof(ctx context.Context, p *ledger.Proof) (header int64, err error)
}

// NodeChecker checks proofs against headers signed by more than 2/3 of the
// validator set a node reports (api.Client.VerifyProof). A device that must
// trust no node uses a light client instead (lightclient.Client).
type NodeChecker struct {
	Client  *api.Client
	ChainID string
}

// CheckProof implements ProofChecker.
func (n NodeChecker) CheckProof(ctx context.Context, p *ledger.Proof) (int64, error) {
	v, err := n.Client.VerifyProof(ctx, n.ChainID, p)
	if err != nil {
		return 0, err
	}
	return v.Header, nil
}

// VerifyReading is VerifyReadingWith a NodeChecker over c.
func VerifyReading(ctx context.Context, c *api.Client, chainID string, p *ReadingProof) (*VerifiedReading, error) {
	return VerifyReadingWith(ctx, NodeChecker{Client: c, ChainID: chainID}, p)
}

// VerifyReadingWith checks a reading proof end to end, trusting only what
// check trusts: the anchor record against the app hash of the anchor's
// height, the entry's inclusion under the anchored root, the signer's
// record at the height the entry says the gateway authenticated the
// reading (before the anchor; the anchor's own height for entries of layout
// 1): active then, with the key that signed; and the signature.
func VerifyReadingWith(ctx context.Context, check ProofChecker, p *ReadingProof) (*VerifiedReading, error) {
	if p.AnchorProof == nil || p.SignerProof == nil {
		return nil, errors.New("the proof lacks its ledger proofs")
	}
	if p.AnchorProof.Height != p.Anchor.Height {
		return nil, errors.New("the anchor proof is not of the anchor's height")
	}
	if p.AuthHeight < 0 || (p.AuthHeight != 0 && p.AuthHeight >= p.Anchor.Height) {
		return nil, fmt.Errorf("the entry says it was authenticated at height %d, not before its anchor at height %d", p.AuthHeight, p.Anchor.Height)
	}
	if p.SignerProof.Height != p.signerHeight() {
		return nil, fmt.Errorf("the signer proof is of height %d, not the authentication height %d", p.SignerProof.Height, p.signerHeight())
	}
	if string(p.AnchorProof.Key) != string(ledger.AnchorAtKey(p.Gateway, p.Anchor.Size)) {
		return nil, errors.New("the anchor proof is of another key")
	}
	header, err := check.CheckProof(ctx, p.AnchorProof)
	if err != nil {
		return nil, fmt.Errorf("anchor: %w", err)
	}
	var a ledger.Anchor
	if err := ledger.Unmarshal(p.AnchorProof.Value, &a); err != nil {
		return nil, fmt.Errorf("anchor record: %w", err)
	}
	if a.Size != p.Anchor.Size || string(a.Root) != string(p.Anchor.Root) || a.Gateway != p.Gateway {
		return nil, errors.New("the anchor in the proof differs from the one on the ledger")
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
	signer := env.Device
	if env.Attester != "" {
		signer = env.Attester
	}
	if string(p.SignerProof.Key) != string(ledger.DeviceKey(signer)) {
		return nil, errors.New("the signer proof is of another key")
	}
	if _, err := check.CheckProof(ctx, p.SignerProof); err != nil {
		return nil, fmt.Errorf("signer record: %w", err)
	}
	var d ledger.Device
	if p.SignerProof.Value == nil {
		return nil, fmt.Errorf("%s was not registered at height %d", signer, p.signerHeight())
	}
	if err := ledger.Unmarshal(p.SignerProof.Value, &d); err != nil {
		return nil, err
	}
	if d.ID != signer {
		return nil, fmt.Errorf("the signer record is of %s, not %s", d.ID, signer)
	}
	if d.Status != ledger.StatusActive {
		return nil, fmt.Errorf("%s was %s at height %d", signer, d.Status, p.signerHeight())
	}
	pub, err := identity.ParseDID(d.Key)
	if err != nil {
		return nil, err
	}
	if err := env.Verify(pub); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return &VerifiedReading{Envelope: env, AuthHeight: p.signerHeight(), AnchorHeight: a.Height, HeaderHeight: header}, nil
}
