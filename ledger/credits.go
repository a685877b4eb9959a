package ledger

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

func transferIdxKey(account string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(record.PrefixTransferIdx+account+"/"), seq)
}

// Balance returns an account's credits (0 if it never held any).
func (s *State) Balance(account string) (uint64, error) {
	return s.u64(record.BalanceKey(account))
}

// Transfers lists an account's transfers (every one if account is ""),
// oldest first, with seq above after.
func (s *State) Transfers(account string, after uint64, limit int) ([]record.Transfer, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []record.Transfer
	if account == "" {
		err := s.scan(record.TransferKey(after+1), prefixEnd([]byte(record.PrefixTransfer)), func(_, v []byte) (bool, error) {
			var t record.Transfer
			if err := record.Unmarshal(v, &t); err != nil {
				return false, err
			}
			out = append(out, t)
			return len(out) < limit, nil
		})
		return out, err
	}
	p := []byte(record.PrefixTransferIdx + account + "/")
	err := s.scan(transferIdxKey(account, after+1), prefixEnd(p), func(k, _ []byte) (bool, error) {
		var t record.Transfer
		ok, err := s.get(record.TransferKey(binary.BigEndian.Uint64(k[len(k)-8:])), &t)
		if err != nil || !ok {
			return false, err
		}
		out = append(out, t)
		return len(out) < limit, nil
	})
	return out, err
}

// ledgerOps are the state changes shared by txs and by agreements run at
// block level: credits, records that need sequence numbers.
type ledgerOps struct {
	st     *State
	buf    *buffer
	height int64
	tx     []byte // hash of the tx being executed; nil at block level
	events *[]eventSink
}

// eventSink collects ABCI events as (type, attributes).
type eventSink struct {
	typ string
	kv  []string
}

func (o *ledgerOps) emit(typ string, kv ...string) {
	*o.events = append(*o.events, eventSink{typ, kv})
}

func (o *ledgerOps) nextSeq(key string) (uint64, error) {
	n, err := o.st.u64([]byte(key))
	if err != nil {
		return 0, err
	}
	o.buf.set([]byte(key), u64bytes(n+1))
	return n + 1, nil
}

// debit takes amount from an account, refusing an overdraft.
func (o *ledgerOps) debit(account string, amount uint64) error {
	bal, err := o.st.Balance(account)
	if err != nil {
		return err
	}
	if bal < amount {
		return record.Errf(record.CodeConflict, "%s holds %d credits; %d needed", account, bal, amount)
	}
	o.buf.set(record.BalanceKey(account), u64bytes(bal-amount))
	return nil
}

func (o *ledgerOps) credit(account string, amount uint64) error {
	bal, err := o.st.Balance(account)
	if err != nil {
		return err
	}
	if bal+amount > record.MaxCredits {
		return record.Errf(record.CodeConflict, "%s would hold more than %d credits", account, uint64(record.MaxCredits))
	}
	o.buf.set(record.BalanceKey(account), u64bytes(bal+amount))
	return nil
}

// move debits from (unless it is an agreement's escrow or a mint), credits
// to (unless it is an escrow), and records the transfer.
func (o *ledgerOps) move(kind, from, to string, amount uint64, agreement uint64, memo string) error {
	if from != "" && !strings.HasPrefix(from, "agreement:") {
		if err := o.debit(from, amount); err != nil {
			return err
		}
	}
	if !strings.HasPrefix(to, "agreement:") {
		if err := o.credit(to, amount); err != nil {
			return err
		}
	}
	seq, err := o.nextSeq(record.KeyTransferSeq)
	if err != nil {
		return err
	}
	o.buf.set(record.TransferKey(seq), &record.Transfer{Seq: seq, Height: o.height, From: from, To: to, Amount: amount, Kind: kind, Agreement: agreement, Tx: o.tx, Memo: memo})
	for _, acct := range []string{from, to} {
		if acct != "" {
			o.buf.set(transferIdxKey(acct, seq), marker)
		}
	}
	o.emit("credit", "seq", strconv.FormatUint(seq, 10), "kind", kind, "from", from, "to", to, "amount", strconv.FormatUint(amount, 10))
	return nil
}

func (x *txExec) ops() *ledgerOps {
	if x.sink == nil {
		x.sink = new([]eventSink)
	}
	return &ledgerOps{st: x.st, buf: x.buf, height: x.height, tx: x.tx.Hash[:], events: x.sink}
}

// flushEvents moves events collected by ledgerOps into the tx's events.
func (x *txExec) flushEvents() {
	if x.sink == nil {
		return
	}
	for _, e := range *x.sink {
		x.emit(e.typ, e.kv...)
	}
	*x.sink = nil
}

func (x *txExec) creditTransfer(m *record.CreditTransfer) error {
	from, _ := record.ParsePrincipal(m.From)
	if err := mayActFor(x.st, x.actor(), from); err != nil {
		return err
	}
	to, _ := record.ParsePrincipal(m.To)
	if err := principalExists(x.st, to); err != nil {
		return err
	}
	defer x.flushEvents()
	return x.ops().move("transfer", m.From, m.To, m.Amount, 0, m.Memo)
}

func (x *txExec) creditMint(m *record.CreditMint) error {
	last, err := x.st.u64([]byte(record.KeyMintSeq))
	if err != nil {
		return err
	}
	if m.Seq != last+1 {
		return record.Errf(record.CodeBadNonce, "mint sequence %d; the next is %d", m.Seq, last+1)
	}
	if err := x.checkApprovals(record.CreditMintMessage(x.chainID, m.Seq, m.To, m.Amount), m.Approvals); err != nil {
		return err
	}
	to, _ := record.ParsePrincipal(m.To)
	if err := principalExists(x.st, to); err != nil {
		return err
	}
	x.buf.set([]byte(record.KeyMintSeq), u64bytes(m.Seq))
	defer x.flushEvents()
	return x.ops().move("mint", "", m.To, m.Amount, 0, "")
}

// checkApprovals checks that validators holding more than 2/3 of the
// current power signed msg with their consensus keys.
func (x *txExec) checkApprovals(msg []byte, approvals []record.Approval) error {
	vals, err := x.st.Validators()
	if err != nil {
		return err
	}
	var total, approved int64
	for _, v := range vals {
		total += v.Power
	}
	seen := map[string]bool{}
	for i, a := range approvals {
		var power int64 = -1
		for _, v := range vals {
			if string(v.PubKey) == string(a.Validator) {
				power = v.Power
			}
		}
		if power < 0 {
			return record.Errf(record.CodeUnauthorized, "approval %d is from %X, which is not a validator", i, a.Validator)
		}
		if seen[string(a.Validator)] {
			return record.Errf(record.CodeInvalid, "approval %d repeats validator %X", i, a.Validator)
		}
		seen[string(a.Validator)] = true
		pub, err := identity.NewPublicKey(identity.Ed25519, a.Validator)
		if err != nil {
			return record.Errf(record.CodeInvalid, "approval %d: %v", i, err)
		}
		if err := pub.Verify(msg, a.Signature); err != nil {
			return record.Errf(record.CodeBadSignature, "approval %d by %X does not verify", i, a.Validator)
		}
		approved += power
	}
	if 3*approved <= 2*total {
		return record.Errf(record.CodeUnauthorized, "approvals hold power %d of %d; more than 2/3 is needed", approved, total)
	}
	return nil
}

func abciEvents(sinks []eventSink) []abci.Event {
	var out []abci.Event
	for _, e := range sinks {
		ev := abci.Event{Type: e.typ}
		for i := 0; i+1 < len(e.kv); i += 2 {
			ev.Attributes = append(ev.Attributes, abci.EventAttribute{Key: e.kv[i], Value: e.kv[i+1], Index: true})
		}
		out = append(out, ev)
	}
	return out
}

// GenesisBalance is an account's credits at genesis.
type GenesisBalance struct {
	Account string `json:"account"` // org:<id> or device:<did>, in the genesis
	Amount  uint64 `json:"amount"`
}

func (g *GenesisState) checkBalances(orgs, devices map[string]bool) error {
	seen := map[string]bool{}
	for _, b := range g.Balances {
		if err := record.CheckAccount(b.Account); err != nil {
			return fmt.Errorf("genesis balance: %w", err)
		}
		p, _ := record.ParsePrincipal(b.Account)
		if p.Type == "org" && !orgs[p.ID] || p.Type == "device" && !devices[p.ID] {
			return fmt.Errorf("genesis balance of %s: the account is not in the genesis", b.Account)
		}
		if seen[b.Account] {
			return fmt.Errorf("genesis balance of %s appears twice", b.Account)
		}
		seen[b.Account] = true
		if b.Amount == 0 || b.Amount > record.MaxCredits {
			return fmt.Errorf("genesis balance of %s: amount %d is out of range 1..%d", b.Account, b.Amount, uint64(record.MaxCredits))
		}
	}
	return nil
}

// applyBalances writes the genesis balances, each recorded as a mint.
func (g *GenesisState) applyBalances(buf *buffer) {
	for i, b := range g.Balances {
		seq := uint64(i + 1)
		buf.set(record.BalanceKey(b.Account), u64bytes(b.Amount))
		buf.set(record.TransferKey(seq), &record.Transfer{Seq: seq, To: b.Account, Amount: b.Amount, Kind: "mint", Memo: "genesis"})
		buf.set(transferIdxKey(b.Account, seq), marker)
	}
	if n := len(g.Balances); n > 0 {
		buf.set([]byte(record.KeyTransferSeq), u64bytes(uint64(n)))
	}
}
