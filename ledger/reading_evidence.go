// Reading evidence: a device's signed reading, proved in a gateway's
// anchored log, as the input of an agreement call.

package ledger

import (
	"github.com/thingnet/thingnet/proof"

	"github.com/thingnet/thingnet/agreements"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// verifyReading is the ledger's one verifier of reading evidence: the
// anchor of the gateway's log at the given size, the envelope's inclusion
// under its root, and the signer rule (record.SignerKeyAt, documented in
// docs/protocol.md "The signer rule", the rule gateways, the device SDK,
// the explorer and the CLI apply too): registered, active and holding the
// key that signed at the reading's authentication height. It returns the
// reading: for a sealed reading, the value its evidence discloses
// (openDisclosed), which signer must be entitled to disclose.
func verifyReading(st *State, chainID, signer string, ev *record.ReadingEvidence) (*agreements.Reading, error) {
	var a record.Anchor
	ok, err := st.get(record.AnchorAtKey(ev.Gateway, ev.Size), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, record.Errf(record.CodeNotFound, "gateway %s never anchored its log at size %d", ev.Gateway, ev.Size)
	}
	if ev.AuthHeight != 0 && ev.AuthHeight >= a.Height {
		return nil, record.Errf(record.CodeInvalid, "the reading's entry says it was authenticated at height %d, not before its anchor at height %d", ev.AuthHeight, a.Height)
	}
	if err := proof.VerifyInclusion(reading.EntryBytes(ev.AuthHeight, ev.ReceivedAt, ev.Envelope), ev.Index, ev.Size, ev.Inclusion, a.Root); err != nil {
		return nil, record.Errf(record.CodeInvalid, "the reading is not entry %d of %s's log anchored at size %d: %v", ev.Index, ev.Gateway, ev.Size, err)
	}
	env, err := reading.Decode(ev.Envelope)
	if err != nil {
		return nil, record.Errf(record.CodeInvalid, "reading: %v", err)
	}
	// The signer rule (SignerKeyAt), from the signer's history in the
	// current state: registered, active and holding the key that signed at
	// the height the gateway authenticated the reading (the anchor's for
	// layout 1). Every replica reads the same current state, so this is
	// deterministic whatever older versions a node keeps.
	at := ev.AuthHeight
	if at == 0 {
		at = a.Height
	}
	held, _, err := st.HistoryAt(env.Signer(), at)
	if err != nil {
		return nil, record.Errf(record.CodeNotFound, "the reading's signer: %v", err)
	}
	key, err := record.SignerKeyAt(env.Signer(), at, held)
	if err != nil {
		return nil, record.Errf(record.CodeInactive, "the reading's signer: %v", err)
	}
	if env.Attester != "" {
		d, err := st.Device(env.Device)
		if err != nil {
			return nil, record.Errf(record.CodeNotFound, "the reading's device: %v", err)
		}
		if d.AttestedBy != env.Attester {
			return nil, record.Errf(record.CodeUnauthorized, "device %s is not attested by %s", d.ID, env.Attester)
		}
	}
	pub, err := identity.ParseDID(key)
	if err != nil {
		return nil, record.Errf(record.CodeUnknownSigner, "the reading's signer %s has an unreadable key: %v", env.Signer(), err)
	}
	if err := env.Verify(pub); err != nil {
		return nil, record.Errf(record.CodeBadSignature, "the reading's signature: %v", err)
	}
	if int(ev.Item) >= len(env.Readings) {
		return nil, record.Errf(record.CodeInvalid, "the envelope holds %d readings; item %d is not one", len(env.Readings), ev.Item)
	}
	rd := env.Readings[ev.Item]
	if rd.Sealed != nil || len(ev.Secret) != 0 {
		if rd, err = openDisclosed(st, chainID, signer, env, rd, ev.Secret); err != nil {
			return nil, err
		}
	}
	if rd.Value == nil {
		return nil, record.Errf(record.CodeInvalid, "reading %d of %s holds bytes; only number readings trigger agreements", rd.Seq, env.Device)
	}
	return &agreements.Reading{Device: env.Device, Seq: rd.Seq, Time: rd.Time.UnixMilli(), ContentType: rd.ContentType, Value: *rd.Value, Attester: env.Attester}, nil
}
