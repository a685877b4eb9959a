//go:build !upgradetest

package ledger

// knownUpgrades lists the state migrations this release carries, oldest
// first (upgrade.go). None yet: the ledger is at application version 1.
func knownUpgrades() []Upgrade { return nil }
