package ledger

import (
	"cmp"
	"slices"

	"github.com/thingnet/thingnet/record"
)

// The mempool's order is not the order in which CheckTx admitted its txs.
// CometBFT's CListMempool appends a tx after CheckTx returned, outside the
// ABCI connection's lock, so when two goroutines (the RPC handlers, or the
// mempool reactors of two peers gossiping the same signer's txs) check a
// signer's nonces n and n+1 one after the other, n+1 can be appended
// first. Before this was handled, such a pair lost txs the node had
// admitted: the recheck after the next block refused n+1 as a nonce gap
// (and the signer's later txs after it), and a block proposed from that
// mempool executed n+1 before n, which failed, after which every later tx
// of the signer waiting in any mempool was refused at its recheck. The
// ledger therefore takes no order from the mempool: a recheck keeps a tx
// past a gap for one block, and a proposal puts each signer's txs in nonce
// order and leaves out those that would not execute for their nonce.

// poolNonces is what CheckTx knows of the signers' nonces waiting in this
// node's mempool since the last commit. a.mu guards it.
type poolNonces struct {
	// next is, per signer, the highest nonce n such that every nonce
	// after the committed one up to n is admitted (0: none is).
	next map[string]uint64
	// ahead holds, per signer, the nonces a recheck kept past a gap, with
	// their txs' hashes: the txs between are in the mempool behind them,
	// or will be refused.
	ahead map[string]map[uint64][32]byte
	// holes are the txs still past a gap when the last block was
	// committed: their recheck refuses them.
	holes map[[32]byte]bool
}

func newPoolNonces() *poolNonces {
	return &poolNonces{next: map[string]uint64{}, ahead: map[string]map[uint64][32]byte{}, holes: map[[32]byte]bool{}}
}

// last returns signer's last nonce counting the mempool's admitted txs,
// given its committed one.
func (p *poolNonces) last(signer string, committed uint64) uint64 {
	return max(committed, p.next[signer])
}

// admit records tx as the signer's next nonce, and the nonces kept ahead
// that it joins up with.
func (p *poolNonces) admit(tx *record.Tx) {
	n := tx.Nonce
	ahead := p.ahead[tx.Signer]
	for {
		if _, ok := ahead[n+1]; !ok {
			break
		}
		delete(ahead, n+1)
		n++
	}
	if ahead != nil && len(ahead) == 0 {
		delete(p.ahead, tx.Signer)
	}
	p.next[tx.Signer] = n
}

// keepAhead records tx, rechecked past a gap (last is its signer's last
// nonce), unless it was past one when the last block was committed too, or
// another tx waiting ahead holds its nonce.
func (p *poolNonces) keepAhead(tx *record.Tx, last uint64) error {
	if p.holes[tx.Hash] {
		return record.Errf(record.CodeBadNonce, "nonce %d is ahead: %s's next nonce is %d, and no tx of it filled the gap for a block (an earlier tx is missing; send it first)", tx.Nonce, tx.Signer, last+1)
	}
	ahead := p.ahead[tx.Signer]
	if h, ok := ahead[tx.Nonce]; ok && h != tx.Hash {
		return record.Errf(record.CodeBadNonce, "nonce %d is used by another tx of %s waiting in this mempool", tx.Nonce, tx.Signer)
	}
	if ahead == nil {
		ahead = map[uint64][32]byte{}
		p.ahead[tx.Signer] = ahead
	}
	ahead[tx.Nonce] = tx.Hash
	return nil
}

// commit starts over for a new committed version: the rechecks that follow
// admit again what stays in the mempool, and what is still past a gap now
// is refused at its recheck.
func (p *poolNonces) commit() {
	clear(p.holes)
	for _, ahead := range p.ahead {
		for _, h := range ahead {
			p.holes[h] = true
		}
	}
	clear(p.ahead)
	clear(p.next)
}

// inNonceOrder returns a proposal's txs with each signer's txs in nonce
// order, in the places its txs held; other txs keep their places, and txs
// that do not decode are left where they are for execution to refuse.
func (a *App) inNonceOrder(raws [][]byte) [][]byte {
	type slot struct {
		i     int
		nonce uint64
	}
	var signers []string // in order of first appearance
	slots := map[string][]slot{}
	for i, raw := range raws {
		tx, err := a.txs.decode(raw)
		if err != nil {
			continue
		}
		if _, ok := slots[tx.Signer]; !ok {
			signers = append(signers, tx.Signer)
		}
		slots[tx.Signer] = append(slots[tx.Signer], slot{i, tx.Nonce})
	}
	out := slices.Clone(raws)
	for _, s := range signers {
		places := slots[s]
		byNonce := slices.Clone(places)
		slices.SortStableFunc(byNonce, func(x, y slot) int { return cmp.Compare(x.nonce, y.nonce) })
		for k, p := range places {
			out[p.i] = raws[byNonce[k].i]
		}
	}
	return out
}

// proposalNonces follows each signer's next nonce through a proposal built
// on the committed state, so that the proposal leaves out a tx that would
// fail for its nonce (or its chain or expiry): it stays in the mempool.
type proposalNonces struct {
	a       *App
	st      *State // committed, the block's parent
	chainID string
	height  int64
	next    map[string]uint64 // the nonce each signer's next tx must have
}

func (a *App) proposalNonces(height int64) *proposalNonces {
	a.mu.RLock()
	defer a.mu.RUnlock()
	p := &proposalNonces{a: a, chainID: a.chainID, height: height, next: map[string]uint64{}}
	if a.committed != nil {
		p.st = &State{r: a.committed, Height: a.committed.Version()}
	}
	return p
}

// fits reports whether raw would pass execution's envelope checks after
// the txs taken so far, and returns its tx for take (nil for a tx that
// does not decode, or whose signer has no key: it fits, and execution
// refuses it as before).
func (p *proposalNonces) fits(raw []byte) (*record.Tx, bool, error) {
	tx, next, err := p.lookup(raw)
	if err != nil || tx == nil {
		return nil, err == nil, err
	}
	return tx, checkEnvelope(tx, p.chainID, p.height, next-1) == nil, nil
}

// take records that tx (from fits) is in the proposal.
func (p *proposalNonces) take(tx *record.Tx) {
	if tx != nil {
		p.next[tx.Signer] = tx.Nonce + 1
	}
}

// lookup returns raw's tx and its signer's next nonce, or a nil tx when
// the proposal does not judge raw.
func (p *proposalNonces) lookup(raw []byte) (*record.Tx, uint64, error) {
	if p.st == nil {
		return nil, 0, nil
	}
	tx, err := p.a.txs.decode(raw)
	if err != nil {
		return nil, 0, nil
	}
	if next, ok := p.next[tx.Signer]; ok {
		return tx, next, nil
	}
	r, err := p.a.signers.get(p.st, tx.Signer, p.a.keys)
	if err != nil {
		return nil, 0, err
	}
	if r.keyErr != nil {
		return nil, 0, nil
	}
	p.next[tx.Signer] = r.nonce + 1
	return tx, r.nonce + 1, nil
}
