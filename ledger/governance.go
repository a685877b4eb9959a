package ledger

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// Governance (docs/operations.md "Governance"): who may create an
// organisation, admin key rotation, and each organisation's share of the
// mempool, the blocks and the agreements' height triggers, so that one
// tenant cannot crowd the others out.

// Governance returns the network's rules; a ledger whose genesis set none
// (networks made before governance) is open and unlimited.
func (s *State) Governance() (*record.Governance, error) {
	var g record.Governance
	ok, err := s.get([]byte(record.KeyGovernance), &g)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &record.Governance{OrgCreation: record.OrgCreationOpen}, nil
	}
	return &g, nil
}

// orgCreateAllowed applies the creation policy to m, signed by x's signer:
// approvals of more than 2/3 of the power, or the deposit, moved into the
// new organisation's account.
func (x *txExec) orgCreateAllowed(m *record.OrgCreate) error {
	g, err := x.st.Governance()
	if err != nil {
		return err
	}
	switch g.OrgCreation {
	case record.OrgCreationOpen:
		return nil
	case record.OrgCreationApproval:
		if len(m.Approvals) == 0 {
			return record.Errf(record.CodeUnauthorized, "this network creates organisations with approvals of validators holding more than 2/3 of the power; ask them for `thingnet org approve --org %s --creator %s`", m.ID, x.tx.Signer)
		}
		return x.checkApprovals(record.OrgCreateMessage(x.chainID, m.ID, x.tx.Signer), m.Approvals)
	case record.OrgCreationDeposit:
		if m.DepositFrom == "" {
			return record.Errf(record.CodeUnauthorized, "this network creates organisations against a deposit of %d credits; name the paying account with --deposit-from", g.OrgDeposit)
		}
		from, _ := record.ParsePrincipal(m.DepositFrom)
		if err := mayActFor(x.st, x.actor(), from); err != nil {
			return err
		}
		defer x.flushEvents()
		return x.ops().move("deposit", m.DepositFrom, "org:"+m.ID, g.OrgDeposit, 0, "deposit for creating organisation "+m.ID)
	default:
		return fmt.Errorf("the ledger's governance names an unknown creation policy %q", g.OrgCreation)
	}
}

// orgAdminRotate replaces the signer by m.New among m.Org's admins.
func (x *txExec) orgAdminRotate(m *record.OrgAdminRotate) error {
	o, err := x.adminOrg(m.Org)
	if err != nil {
		return err
	}
	if m.New == x.tx.Signer || o.IsAdmin(m.New) {
		return record.Errf(record.CodeConflict, "%s is already an admin of %q", m.New, m.Org)
	}
	if d, err := x.st.Device(m.New); err == nil {
		return record.Errf(record.CodeInvalid, "%s is a device of %q; admins are people's keys", m.New, d.Org)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	pub, err := identity.ParseDID(m.New)
	if err != nil {
		return record.Errf(record.CodeInvalid, "new admin: %v", err)
	}
	if err := pub.Verify(record.AdminKeyMessage(x.chainID, m.Org, m.New), m.Proof); err != nil {
		return record.Errf(record.CodeBadSignature, "the proof of possession does not verify with %s; sign AdminKeyMessage with the new key", m.New)
	}
	o.Admins = slices.DeleteFunc(o.Admins, func(a string) bool { return a == x.tx.Signer })
	o.Admins = append(o.Admins, m.New)
	slices.Sort(o.Admins)
	x.buf.del(adminKey(x.tx.Signer, m.Org))
	x.buf.set(adminKey(m.New, m.Org), marker)
	x.buf.set(record.OrgKey(m.Org), o)
	x.emit("org", "id", m.Org, "action", m.Kind(), "admin", m.New, "old", x.tx.Signer)
	return nil
}

// Budgets. A tx is charged to its signer's organisation: a device's own;
// for a person's key, the first organisation (in id order) it administers;
// a key that administers none is its own budget ("key:<did>"). Anchors,
// validator updates and credit mints are the network's own work and are
// not charged.

// unchargedKinds are the kinds no budget applies to.
var unchargedKinds = map[string]bool{
	record.KindDataAnchor:      true,
	record.KindValidatorUpdate: true,
	record.KindCreditMint:      true,
}

// chargeOf returns the budget signer's txs of kind are charged to, or ""
// for none.
func chargeOf(st *State, signer, kind string) (string, error) {
	if unchargedKinds[kind] {
		return "", nil
	}
	return chargeOfSigner(st, signer)
}

func chargeOfSigner(st *State, signer string) (string, error) {
	d, err := st.Device(signer)
	if err == nil {
		return "org:" + d.Org, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return "", err
	}
	prefix := record.PrefixAdmin + signer + "/"
	var org string
	err = st.scan([]byte(prefix), prefixEnd([]byte(prefix)), func(k, _ []byte) (bool, error) {
		org = strings.TrimPrefix(string(k), prefix)
		return false, nil
	})
	if err != nil {
		return "", err
	}
	if org != "" {
		return "org:" + org, nil
	}
	return "key:" + signer, nil
}

// budgetCounter counts a block's (or a mempool's) txs per charge.
type budgetCounter struct {
	limit int // 0: unlimited
	n     map[string]int
}

func newBudgetCounter(limit int) *budgetCounter {
	return &budgetCounter{limit: limit, n: map[string]int{}}
}

// take counts one tx charged to c, unless c has spent its budget.
func (b *budgetCounter) take(c string) bool {
	if b.limit == 0 || c == "" {
		return true
	}
	if b.n[c] >= b.limit {
		return false
	}
	b.n[c]++
	return true
}

// blockCharges returns the charge of each raw tx of a proposal against
// the committed state ("" for a tx that is not charged or does not decode:
// execution refuses those).
func (a *App) blockCharges(txs [][]byte) (*record.Governance, []string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.committed == nil {
		return &record.Governance{OrgCreation: record.OrgCreationOpen}, make([]string, len(txs)), nil
	}
	st := &State{r: a.committed, Height: a.committed.Version()}
	g, err := st.Governance()
	if err != nil {
		return nil, nil, err
	}
	charges := make([]string, len(txs))
	if g.BlockTxs == 0 {
		return g, charges, nil
	}
	for i, raw := range txs {
		tx, err := a.txs.decode(raw)
		if err != nil {
			continue
		}
		if charges[i], err = chargeOf(st, tx.Signer, tx.Kind); err != nil {
			return nil, nil, err
		}
	}
	return g, charges, nil
}
