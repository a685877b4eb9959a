package ledger

import (
	"errors"

	"github.com/thingnet/thingnet/identity"
)

// signerKey resolves the key that must have signed a tx from signer: a
// registered device signs with its current key and only while active; any
// other signer must be a did:key, which is its own key.
func signerKey(s *State, signer string) (identity.PublicKey, *Device, error) {
	d, err := s.Device(signer)
	switch {
	case err == nil:
		if d.Status != StatusActive {
			return identity.PublicKey{}, d, errf(CodeInactive, "device %s is %s", signer, d.Status)
		}
		k, err := identity.ParseDID(d.Key)
		if err != nil {
			return identity.PublicKey{}, d, errf(CodeUnknownSigner, "device %s has an unreadable key: %v", signer, err)
		}
		return k, d, nil
	case errors.Is(err, ErrNotFound):
		k, err := identity.ParseDID(signer)
		if err != nil {
			return identity.PublicKey{}, nil, errf(CodeUnknownSigner, "signer %q is not a registered device nor a did:key: %v", signer, err)
		}
		return k, nil, nil
	default:
		return identity.PublicKey{}, nil, err
	}
}

// checkEnvelope runs the stateful checks every tx passes before execution,
// except the signature: chain id, expiry, signer and nonce. height is the
// height of the block the tx would be in; lastNonce the signer's last nonce.
func checkEnvelope(tx *Tx, chainID string, height int64, lastNonce uint64) error {
	if tx.ChainID != chainID {
		return errf(CodeWrongChain, "tx is for chain %q; this is %q", tx.ChainID, chainID)
	}
	if tx.Expiry < height {
		return errf(CodeExpired, "tx expired at height %d; the next block is %d", tx.Expiry, height)
	}
	if tx.Nonce <= lastNonce {
		return errf(CodeBadNonce, "nonce %d is not above %s's last nonce %d (replayed or out of order)", tx.Nonce, tx.Signer, lastNonce)
	}
	return nil
}
