package gateway

import (
	"errors"
	"fmt"

	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// ErrNoEntry is returned for an index beyond the gateway's log.
var ErrNoEntry = errors.New("no such log entry")

// Prove builds the proof of the envelope at index, against the latest
// committed state; the error wraps ErrNotAnchored or ErrUnprovable when the
// reading is stored but its proof cannot be made (Reading answers it then).
func (g *Gateway) Prove(app *ledger.App, index uint64) (*proof.Reading, error) {
	p, err := g.Reading(app, index)
	if err != nil {
		return nil, err
	}
	return p, p.Err()
}

// Reading returns the stored reading at index with its proof, against the
// latest committed state, or with ProofError set when the proof cannot be
// made; the error is for an entry that cannot be read (ErrNoEntry beyond
// the log). An erased entry (erase.go) answers without its envelope:
// Withheld code "erased", its EntryHash and the public part of the proof.
func (g *Gateway) Reading(app *ledger.App, index uint64) (*proof.Reading, error) {
	if size := g.data.Size(); index >= size {
		return nil, fmt.Errorf("%w: entry %d (the log has %d entries)", ErrNoEntry, index, size)
	}
	raw, err := g.entry(index)
	var ee *datalog.ErasedError
	if errors.As(err, &ee) {
		return g.erasedReading(app, index, ee)
	}
	if err != nil {
		return nil, err
	}
	e, err := reading.DecodeEntry(raw)
	if err != nil {
		return nil, fmt.Errorf("log entry %d: %w", index, err)
	}
	p := &proof.Reading{Gateway: g.id, Index: index, Envelope: e.Envelope.Raw, AuthHeight: e.AuthHeight, ReceivedAt: e.ReceivedAt}
	for _, r := range e.Envelope.Readings {
		p.Late = p.Late || g.late(e.ReceivedAt, r)
	}
	if err := g.prove(app, p, e.Envelope.Signer()); err != nil {
		code := proof.CodeUnprovable
		if errors.Is(err, proof.ErrNotAnchored) {
			code = proof.CodeNotAnchored
		}
		return &proof.Reading{Gateway: p.Gateway, Index: index, Envelope: p.Envelope, AuthHeight: p.AuthHeight, ReceivedAt: p.ReceivedAt, Late: p.Late,
			ProofError: &proof.Unavailable{Code: code, Message: err.Error()}}, nil
	}
	return p, nil
}

// prove fills p's anchor, inclusion and ledger proofs, all of one state.
func (g *Gateway) prove(app *ledger.App, p *proof.Reading, signer string) error {
	st, err := app.View(0)
	if err != nil {
		return err
	}
	if err := g.proveAnchor(app, st, p); err != nil {
		return err
	}
	p.Signer, err = ProveSigner(app, st, signer, p.SignerHeight())
	return err
}

// proveAnchor fills p's anchor, inclusion and anchor proofs, of state st:
// the public part of a reading's proof (proof.VerifyAnchored).
func (g *Gateway) proveAnchor(app *ledger.App, st *ledger.State, p *proof.Reading) error {
	a, err := st.AnchorCovering(g.id, p.Index)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("%w: entry %d (the log has %d entries; anchors follow within a block or two)", proof.ErrNotAnchored, p.Index, g.data.Size())
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
	return nil
}

// ProveSigner proves from st (a committed state of app) what id held at
// height: its history event in force then and the proof that no later one
// precedes it (SignerProof).
func ProveSigner(app *ledger.App, st *ledger.State, id string, height int64) (*proof.Signer, error) {
	held, d, err := st.HistoryAt(id, height)
	if err != nil {
		return nil, fmt.Errorf("the history of %s: %w", id, err)
	}
	if held == nil {
		return nil, fmt.Errorf("%s was not registered at height %d", id, height)
	}
	sp := &proof.Signer{}
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
