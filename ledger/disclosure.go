// Disclosing one sealed reading: an agreement acts on a sealed reading
// when its owner discloses that one value's secret with the reading's
// evidence (docs/privacy.md, "Disclosing one sealed reading").

package ledger

import (
	"errors"

	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// openDisclosed opens the sealed reading rd of env with the secret its
// evidence discloses, once the evidence itself (anchor, inclusion,
// signer rule) has been verified. It is deterministic: the commitment in
// the signed envelope binds the secret (SHA-256), and with it
// ChaCha20-Poly1305 decrypts to exactly one plaintext, bound by its
// associated data to this chain, device, seq and key version; no key, no
// randomness and no clock is involved.
//
// Who may disclose: the device itself, or an admin of its organisation
// (who holds the data key). Anyone else who learnt the secret (a grantee)
// must ask them: disclosure is the owner's decision, recorded under the
// owner's signature in the block.
func openDisclosed(st *State, chainID, signer string, env *reading.Envelope, rd reading.Reading, secret []byte) (reading.Reading, error) {
	if rd.Sealed == nil {
		return rd, record.Errf(record.CodeInvalid, "reading %d of %s is not sealed; a disclosed secret is only for a sealed reading", rd.Seq, env.Device)
	}
	if len(secret) == 0 {
		return rd, record.Errf(record.CodeInvalid, "reading %d of %s is sealed: an agreement acts on it only once its owner discloses it (the reading evidence's secret)", rd.Seq, env.Device)
	}
	if signer != env.Device {
		d, err := st.Device(env.Device)
		if err != nil {
			return rd, notFound(err)
		}
		if _, err := adminOf(st, signer, d.Org); err != nil {
			return rd, record.Errf(record.CodeUnauthorized, "only device %s or an admin of its organisation %q may disclose its sealed reading %d", env.Device, d.Org, rd.Seq)
		}
	}
	open, err := reading.OpenSealed(secret, chainID, rd)
	if err != nil {
		if errors.Is(err, reading.ErrSealed) {
			return rd, record.Errf(record.CodeInvalid, "disclosure refused: %v", err)
		}
		return rd, record.Errf(record.CodeInvalid, "disclosure: %v", err)
	}
	return open, nil
}
