package ledger

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/thingnet/thingnet/identity"
)

// GenesisState is the app_state of genesis.json: what the ledger holds before block 1.
type GenesisState struct {
	Orgs []GenesisOrg `json:"orgs,omitempty"`
}

// GenesisOrg is an organisation that exists from the start.
type GenesisOrg struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Admins []string `json:"admins"`
}

// ParseGenesis decodes and checks app_state; empty input is an empty state.
func ParseGenesis(raw []byte) (*GenesisState, error) {
	var g GenesisState
	if len(raw) == 0 || string(raw) == "null" {
		return &g, nil
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("genesis app_state: %w", err)
	}
	seen := map[string]bool{}
	for _, o := range g.Orgs {
		if err := (&OrgCreate{ID: o.ID, Name: o.Name}).ValidateBasic(); err != nil {
			return nil, fmt.Errorf("genesis org %q: %w", o.ID, err)
		}
		if seen[o.ID] {
			return nil, fmt.Errorf("genesis org %q appears twice", o.ID)
		}
		seen[o.ID] = true
		if len(o.Admins) == 0 {
			return nil, fmt.Errorf("genesis org %q has no admin", o.ID)
		}
		for _, a := range o.Admins {
			if _, err := identity.ParseDID(a); err != nil {
				return nil, fmt.Errorf("genesis org %q admin: %w", o.ID, err)
			}
		}
	}
	return &g, nil
}

// apply writes the genesis state in a fixed order.
func (g *GenesisState) apply(buf *buffer) {
	for _, o := range g.Orgs {
		admins := slices.Clone(o.Admins)
		slices.Sort(admins)
		admins = slices.Compact(admins)
		buf.set(OrgKey(o.ID), &Org{ID: o.ID, Name: o.Name, Admins: admins})
		for _, a := range admins {
			buf.set(adminKey(a, o.ID), marker)
		}
	}
}
