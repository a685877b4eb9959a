package record

import (
	"errors"
	"fmt"
)

// Software upgrades (docs/operations.md "Upgrades"): validators holding
// more than 2/3 of the power plan one on the ledger — a name, the height at
// which it happens, the application version it brings. At that height
// every node stops unless its binary carries the named migration; one that
// does runs it at the start of the block and goes on.

// KindUpgradePlan plans (or, with height 0, cancels) a software upgrade.
const KindUpgradePlan = "upgrade.plan"

// State keys of upgrades.
const (
	// KeyUpgradePlan holds the pending UpgradePlan, if any.
	KeyUpgradePlan = "m/upgrade"
	// KeyUpgradeSeq holds the last upgrade-plan sequence number.
	KeyUpgradeSeq = "m/upgradeseq"
	// KeyAppVersion holds the state's application version (absent: 1).
	KeyAppVersion = "m/appversion"
	// PrefixUpgradeDone indexes done upgrades by name: ud/<name> -> UpgradeDone.
	PrefixUpgradeDone = "ud/"
)

// UpgradeDoneKey is the key of upgrade name's record once done.
func UpgradeDoneKey(name string) []byte { return []byte(PrefixUpgradeDone + name) }

// UpgradePlan is the tx, and the pending record (without approvals).
type UpgradePlan struct {
	Name string `cbor:"1,keyasint" json:"name"`
	// Height is the block at whose start the migration runs; 0 cancels
	// the pending plan of this name.
	Height int64 `cbor:"2,keyasint" json:"height"`
	// AppVersion is the application version from Height on; above the
	// state's.
	AppVersion uint64     `cbor:"3,keyasint" json:"app_version"`
	Info       string     `cbor:"4,keyasint,omitempty" json:"info,omitempty"` // e.g. the release's URL and digest
	Seq        uint64     `cbor:"5,keyasint" json:"seq"`                      // the ledger's next upgrade sequence
	Approvals  []Approval `cbor:"6,keyasint,omitempty" json:"-"`
	// Planned is the height of the block that recorded the plan (set by
	// the ledger, ignored in the tx).
	Planned int64 `cbor:"7,keyasint,omitempty" json:"planned,omitempty"`
}

// UpgradeDone records a done upgrade.
type UpgradeDone struct {
	Name       string `cbor:"1,keyasint" json:"name"`
	Height     int64  `cbor:"2,keyasint" json:"height"`
	AppVersion uint64 `cbor:"3,keyasint" json:"app_version"`
}

func (*UpgradePlan) Kind() string { return KindUpgradePlan }

func (m *UpgradePlan) ValidateBasic() error {
	if err := validateUpgradeName(m.Name); err != nil {
		return err
	}
	if m.Height < 0 {
		return fmt.Errorf("upgrade height %d; want a future height, or 0 to cancel", m.Height)
	}
	if m.Height > 0 && m.AppVersion < 2 {
		return fmt.Errorf("app version %d; an upgrade brings version 2 or later", m.AppVersion)
	}
	if m.Seq == 0 {
		return errors.New("seq is required: the ledger's last upgrade sequence + 1")
	}
	if err := validateText("info", m.Info, 256); err != nil {
		return err
	}
	return ValidateApprovals(m.Approvals, true)
}

func validateUpgradeName(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return fmt.Errorf("upgrade name %q must be 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return fmt.Errorf("upgrade name %q: use a-z, 0-9, '-', '.', '_'", name)
		}
	}
	return nil
}

// UpgradePlanMessage is what each approving validator signs.
func UpgradePlanMessage(chainID string, seq uint64, name string, height int64, appVersion uint64, info string) []byte {
	return MustMarshal([]any{"thingnet/upgrade/v1", chainID, seq, name, height, appVersion, info})
}
