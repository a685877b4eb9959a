package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigRules: [[rules]] in thingnet.toml load with their selector and
// action, and a bad condition stops the configuration from loading, with
// the rule's name and the position in its condition.
func TestConfigRules(t *testing.T) {
	home := t.TempDir()
	if err := WriteConfig(home, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, ConfigFile)
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(rules string) {
		t.Helper()
		if err := os.WriteFile(path, append(append([]byte{}, base...), rules...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`
[[rules]]
name = "hot"
org = "demo"
when = "mean(temperature, 5m) > 30 && count(5m) >= 3"
cooldown = "10m"
[rules.devices]
classes = ["sensor"]
[rules.action]
webhook = "https://example.com/hook"
`)
	c, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rules) != 1 || c.Rules[0].Cooldown.Minutes() != 10 || c.Rules[0].Devices.Classes[0] != "sensor" || c.Rules[0].Action.Webhook == "" {
		t.Fatalf("rules: %+v", c.Rules)
	}
	write(`
[[rules]]
name = "broken"
org = "demo"
when = "mean(temperature, 5m) > 30 &&"
`)
	if _, err := LoadConfig(home); err == nil || !strings.Contains(err.Error(), `rule "broken" at 1:`) {
		t.Fatalf("a bad rule: %v; want its name and position", err)
	}
}
