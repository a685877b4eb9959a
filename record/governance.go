package record

import (
	"errors"
	"fmt"

	"github.com/thingnet/thingnet/identity"
)

// Governance: who may create an organisation, and how much of the shared
// mempool and blocks one organisation may take (docs/operations.md
// "Governance"). The rules are set in the genesis and kept in the state
// under KeyGovernance, so that every node and every reader sees the same.

// KindOrgAdminRotate replaces the signing admin's key by a new one.
const KindOrgAdminRotate = "org.admin.rotate"

// KeyGovernance holds the network's Governance (CBOR).
const KeyGovernance = "m/governance"

// The organisation-creation policies.
const (
	// OrgCreationOpen lets any key create an organisation (the devnet's).
	OrgCreationOpen = "open"
	// OrgCreationApproval needs approvals of validators holding more than
	// 2/3 of the power (the default of a new network).
	OrgCreationApproval = "approval"
	// OrgCreationDeposit needs a deposit of OrgDeposit credits, moved
	// into the new organisation's own account.
	OrgCreationDeposit = "deposit"
)

// MaxApprovals bounds the validator approvals a tx may carry.
const MaxApprovals = 200

// Governance is the network's rule book for membership and shares.
// Budgets of 0 are unlimited.
type Governance struct {
	// OrgCreation is OrgCreationOpen, OrgCreationApproval or
	// OrgCreationDeposit.
	OrgCreation string `cbor:"1,keyasint" json:"org_creation"`
	// OrgDeposit is the deposit of OrgCreationDeposit, in credits.
	OrgDeposit uint64 `cbor:"2,keyasint,omitempty" json:"org_deposit,omitempty"`
	// BlockTxs is how many txs charged to one organisation a block may
	// carry; the proposer leaves the rest in the mempool for the next
	// blocks, and a block with more is rejected.
	BlockTxs int `cbor:"3,keyasint,omitempty" json:"block_txs_per_org,omitempty"`
	// MempoolTxs is how many txs charged to one organisation a node's
	// mempool holds at once; more are refused (CodeOverBudget) until
	// some commit.
	MempoolTxs int `cbor:"4,keyasint,omitempty" json:"mempool_txs_per_org,omitempty"`
	// BlockTriggers is how many height-triggered agreement transitions
	// charged to one organisation run per block; the rest wait for the
	// next blocks.
	BlockTriggers int `cbor:"5,keyasint,omitempty" json:"block_triggers_per_org,omitempty"`
}

// maxBudget bounds each budget, so that a genesis cannot overflow counters.
const maxBudget = 1 << 20

// Validate checks the policy's fields.
func (g *Governance) Validate() error {
	switch g.OrgCreation {
	case OrgCreationOpen, OrgCreationApproval:
		if g.OrgDeposit != 0 {
			return fmt.Errorf("governance: org_deposit %d is set but org_creation is %q; set org_creation to %q or drop the deposit", g.OrgDeposit, g.OrgCreation, OrgCreationDeposit)
		}
	case OrgCreationDeposit:
		if g.OrgDeposit == 0 || g.OrgDeposit > MaxCredits {
			return fmt.Errorf("governance: org_deposit %d is out of range 1..%d", g.OrgDeposit, uint64(MaxCredits))
		}
	default:
		return fmt.Errorf("governance: org_creation %q; want %q, %q or %q", g.OrgCreation, OrgCreationOpen, OrgCreationApproval, OrgCreationDeposit)
	}
	for _, b := range []struct {
		name string
		v    int
	}{{"block_txs_per_org", g.BlockTxs}, {"mempool_txs_per_org", g.MempoolTxs}, {"block_triggers_per_org", g.BlockTriggers}} {
		if b.v < 0 || b.v > maxBudget {
			return fmt.Errorf("governance: %s %d is out of range 0..%d (0 is unlimited)", b.name, b.v, maxBudget)
		}
	}
	return nil
}

// OrgCreateMessage is what each approving validator signs for the
// creation of organisation id by creator (a did:key).
func OrgCreateMessage(chainID, id, creator string) []byte {
	return MustMarshal([]any{"thingnet/org-create/v1", chainID, id, creator})
}

// AdminKeyMessage is what a new admin key signs to prove possession when
// an admin rotates to it.
func AdminKeyMessage(chainID, org, admin string) []byte {
	return MustMarshal([]any{"thingnet/admin-key/v1", chainID, org, admin})
}

// ValidateApprovals checks the shape of validator approvals: at most
// MaxApprovals, each a 32-byte Ed25519 key and a 64-byte signature; at
// least one if required.
func ValidateApprovals(as []Approval, required bool) error {
	if required && len(as) == 0 {
		return errors.New("no validator approvals")
	}
	if len(as) > MaxApprovals {
		return fmt.Errorf("%d approvals; at most %d", len(as), MaxApprovals)
	}
	for i, a := range as {
		if len(a.Validator) != 32 || len(a.Signature) != 64 {
			return fmt.Errorf("approval %d: want a 32-byte key and a 64-byte signature", i)
		}
	}
	return nil
}

// OrgAdminRotate replaces the signer, an admin of Org, by New in one step:
// a lost or retired key is rotated out without a window where the
// organisation has one admin fewer, or one more. New proves possession by
// signing AdminKeyMessage(chain, Org, New).
type OrgAdminRotate struct {
	Org   string `cbor:"1,keyasint"`
	New   string `cbor:"2,keyasint"`
	Proof []byte `cbor:"3,keyasint"`
}

func (*OrgAdminRotate) Kind() string { return KindOrgAdminRotate }

func (m *OrgAdminRotate) ValidateBasic() error {
	if err := validateOrgID(m.Org); err != nil {
		return err
	}
	if _, err := identity.ParseDID(m.New); err != nil {
		return fmt.Errorf("new admin: %w", err)
	}
	if len(m.Proof) == 0 || len(m.Proof) > 128 {
		return fmt.Errorf("proof of possession is %d bytes; want the new key's signature", len(m.Proof))
	}
	return nil
}
