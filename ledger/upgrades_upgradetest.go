//go:build upgradetest

package ledger

// knownUpgrades of the upgrade-test build: the network the e2e upgrade
// scenario runs (test/e2e TestUpgrade) is upgraded to this build, whose
// migration labels every device upgraded=e2e-v2.
func knownUpgrades() []Upgrade {
	return []Upgrade{{Name: "e2e-v2", AppVersion: 2, Migrate: labelEveryDevice("upgraded", "e2e-v2")}}
}
