package ledger

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// GenesisState is the app_state of genesis.json: what the ledger holds before block 1.
type GenesisState struct {
	Orgs    []GenesisOrg    `json:"orgs,omitempty"`
	Devices []GenesisDevice `json:"devices,omitempty"`
	// Balances are the credits that exist from the start (credits.go);
	// afterwards only credit.mint by the validators creates more.
	Balances []GenesisBalance `json:"balances,omitempty"`
	// Governance is who may create organisations and each organisation's
	// share of the mempool and blocks (governance.go). Without it the
	// network is open and unlimited, as networks made before it were;
	// `thingnet node init` writes approval-only creation for new networks.
	Governance *record.Governance `json:"governance,omitempty"`
}

// GenesisDevice is a device registered from the start (gateways of a new
// network, factory batches); genesis is trusted, so no proof of possession.
type GenesisDevice struct {
	ID     string            `json:"id"` // did:key
	Org    string            `json:"org"`
	Class  string            `json:"class,omitempty"`
	Labels map[string]string `json:"labels,omitempty"` // e.g. a gateway's api URL (client.GatewayAPILabel)
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
		if err := (&record.OrgCreate{ID: o.ID, Name: o.Name}).ValidateBasic(); err != nil {
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
	devs := map[string]bool{}
	for _, d := range g.Devices {
		if !seen[d.Org] {
			return nil, fmt.Errorf("genesis device %s: organisation %q is not in the genesis", d.ID, d.Org)
		}
		if _, err := identity.ParseDID(d.ID); err != nil {
			return nil, fmt.Errorf("genesis device: %w", err)
		}
		if devs[d.ID] {
			return nil, fmt.Errorf("genesis device %s appears twice", d.ID)
		}
		devs[d.ID] = true
		if err := record.ValidateMeta(d.Class, "", d.Labels); err != nil {
			return nil, fmt.Errorf("genesis device %s: %w", d.ID, err)
		}
	}
	if err := g.checkBalances(seen, devs); err != nil {
		return nil, err
	}
	if g.Governance != nil {
		if err := g.Governance.Validate(); err != nil {
			return nil, fmt.Errorf("genesis: %w", err)
		}
	}
	return &g, nil
}

// apply writes the genesis state in a fixed order.
func (g *GenesisState) apply(buf *buffer) {
	devices := map[string]uint64{}
	for _, gd := range g.Devices {
		devices[gd.Org]++
		d := &record.Device{ID: gd.ID, Org: gd.Org, Key: gd.ID, Status: record.StatusActive, Class: gd.Class, Labels: gd.Labels}
		recordDevice(buf, d, record.Event{Kind: record.KindDeviceRegister, Signer: "genesis", Note: "registered in " + gd.Org + " at genesis"})
	}
	g.applyBalances(buf)
	if g.Governance != nil {
		buf.set([]byte(record.KeyGovernance), g.Governance)
	}
	for _, o := range g.Orgs {
		admins := slices.Clone(o.Admins)
		slices.Sort(admins)
		admins = slices.Compact(admins)
		buf.set(record.OrgKey(o.ID), &record.Org{ID: o.ID, Name: o.Name, Admins: admins, Devices: devices[o.ID]})
		for _, a := range admins {
			buf.set(adminKey(a, o.ID), marker)
		}
	}
}
