package record

import (
	"errors"
	"fmt"
)

// ErrSignerNotActive is returned (wrapped) when a signer was not
// registered, not active, or held no recorded key at a height.
var ErrSignerNotActive = errors.New("signer not active")

// SignerKeyAt is the signer rule for anything signed under the ledger's
// authority (readings, their evidence, attestations): id must have been
// registered and active at height, and the key it held then signs. held
// is id's history event in force at height (HistoryAt; nil: not
// registered yet). It returns that key (a did:key).
func SignerKeyAt(id string, height int64, held *Event) (string, error) {
	switch {
	case held == nil:
		return "", fmt.Errorf("%w: %s was not registered at height %d", ErrSignerNotActive, id, height)
	case held.Height > height:
		return "", fmt.Errorf("%w: %s's history event %d is of height %d, after %d", ErrSignerNotActive, id, held.Seq, held.Height, height)
	case held.Status != StatusActive:
		return "", fmt.Errorf("%w: %s was %s at height %d", ErrSignerNotActive, id, held.Status, height)
	case held.Key == "":
		return "", fmt.Errorf("%w: %s's history event %d records no key", ErrSignerNotActive, id, held.Seq)
	}
	return held.Key, nil
}
