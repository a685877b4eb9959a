package ledger

import "github.com/thingnet/thingnet/identity"

// preverified is the outcome of verifying a tx's signature ahead of
// execution, with the key it was checked against.
type preverified struct {
	done  bool
	valid bool
	pub   identity.PublicKey
}

// preverify batch-verifies the signatures of a block's txs that this node
// has not verified yet (normally txs it never saw in its mempool), against
// the signer keys of the state before the block. Execution uses a result
// only if the signer's key is still the same when the tx's turn comes.
// The result is a pure function of (key, message, signature), so it is the
// same on every node.
func (a *App) preverify(txs [][]byte, height int64) []preverified {
	out := make([]preverified, len(txs))
	st := &State{r: a.tree, Height: height - 1}
	batch := identity.NewBatch(len(txs))
	var idx []int
	for i, raw := range txs {
		tx, err := a.txs.decode(raw)
		if err != nil || a.sigs.hasTx(tx.Hash) { // verified in CheckTx: no key lookup either
			continue
		}
		pub, _, err := signerKey(st, tx.Signer, a.keys)
		if err != nil || pub.Alg != tx.Envelope.Alg {
			continue
		}
		tbs, err := tx.Envelope.ToBeSigned(nil)
		if err != nil {
			continue
		}
		batch.Add(pub, tbs, tx.Envelope.Signature)
		idx = append(idx, i)
		out[i].pub = pub
	}
	if len(idx) == 0 {
		return out
	}
	a.verified.Add(uint64(len(idx)))
	_, valid := batch.Verify()
	for j, i := range idx {
		out[i].done = true
		out[i].valid = valid[j]
	}
	return out
}
