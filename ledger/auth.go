package ledger

import (
	"errors"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// signerKey resolves the key that must have signed a tx from signer: a
// registered device signs with its current key and only while active; any
// other signer must be a did:key, which is its own key.
func signerKey(s *State, signer string, keys *identity.DIDCache) (identity.PublicKey, *record.Device, error) {
	d, err := s.Device(signer)
	switch {
	case err == nil:
		if d.Status != record.StatusActive {
			return identity.PublicKey{}, d, record.Errf(record.CodeInactive, "device %s is %s", signer, d.Status)
		}
		k, err := keys.Parse(d.Key)
		if err != nil {
			return identity.PublicKey{}, d, record.Errf(record.CodeUnknownSigner, "device %s has an unreadable key: %v", signer, err)
		}
		return k, d, nil
	case errors.Is(err, ErrNotFound):
		k, err := keys.Parse(signer)
		if err != nil {
			return identity.PublicKey{}, nil, record.Errf(record.CodeUnknownSigner, "signer %q is not a registered device nor a did:key: %v", signer, err)
		}
		return k, nil, nil
	default:
		return identity.PublicKey{}, nil, err
	}
}

// checkEnvelope runs the stateful checks every tx passes before execution,
// except the signature: chain id, expiry and nonce. height is the height of
// the block the tx would be in; lastNonce the signer's last nonce.
//
// Nonces are strictly sequential (the next is lastNonce+1), never "any
// larger one": mempools receive a signer's txs over several gossip paths and
// so in any order, and with gaps allowed a proposer that saw nonce n+1 first
// would commit it and make the acknowledged nonce n invalid. With strict
// sequencing a mempool refuses n+1 until it holds n, and accepts it when
// n+1 is gossiped again.
func checkEnvelope(tx *record.Tx, chainID string, height int64, lastNonce uint64) error {
	if tx.ChainID != chainID {
		return record.Errf(record.CodeWrongChain, "tx is for chain %q; this is %q", tx.ChainID, chainID)
	}
	if tx.Expiry < height {
		return record.Errf(record.CodeExpired, "tx expired at height %d; the next block is %d", tx.Expiry, height)
	}
	switch {
	case tx.Nonce <= lastNonce:
		return record.Errf(record.CodeBadNonce, "nonce %d is used: %s's last nonce is %d (a replay, or a tx already sent)", tx.Nonce, tx.Signer, lastNonce)
	case tx.Nonce > lastNonce+1:
		return record.Errf(record.CodeBadNonce, "nonce %d is ahead: %s's next nonce is %d (an earlier tx is missing; send it first)", tx.Nonce, tx.Signer, lastNonce+1)
	}
	return nil
}
