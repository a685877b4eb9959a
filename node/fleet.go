package node

import (
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/fleet"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/rules"
)

// FleetConfig is [fleet]: how this node's gateway judges its devices'
// health (docs/management.md, "Fleet health").
type FleetConfig struct {
	// Missed is how many of its wake intervals a device may miss before
	// it counts as silent (0: 3); Wake is the wake interval of a device
	// whose desired configuration sets none (wake_s; 0: 5s).
	Missed int      `toml:"missed,omitempty"`
	Wake   Duration `toml:"wake,omitempty"`
	// Every is how often the census is taken for the fleet rules, and how
	// long a census is reused for /metrics (0: 10s).
	Every Duration `toml:"every,omitempty"`
}

// fleetSeedEntries bounds how far back the tail of the data log is read
// at start to learn when each device was last seen.
const fleetSeedEntries = 100_000

// startFleet starts the gateway's fleet tracker: seeded from the last
// entries of its data log (at most fleetSeedEntries), then fed by the
// stored-reading feed (followStored); and the census of the ledger's
// devices against it.
func (n *Node) startFleet(c Config) {
	n.fleet = fleet.NewTracker(0)
	start := time.Now()
	seeded := n.seedFleet(fleetSeedEntries)
	n.census = fleet.NewCensus(fleet.CensusConfig{Tracker: n.fleet, Devices: n.fleetDevices,
		Wake: c.Fleet.Wake.Duration, Missed: c.Fleet.Missed, MaxAge: c.Fleet.Every.Duration})
	n.log.Info("fleet tracker seeded", "entries", seeded, "devices", n.fleet.Len(), "took", time.Since(start).Round(time.Millisecond))
}

// seedFleet gives the tracker the readings of the last max log entries.
func (n *Node) seedFleet(max uint64) uint64 {
	size := n.gw.Log().Size()
	from := uint64(0)
	if size > max {
		from = size - max
	}
	for i := from; i < size; i++ {
		raw, err := n.gw.Log().Entry(i)
		if err != nil {
			continue // erased
		}
		e, err := reading.DecodeEntry(raw)
		if err != nil {
			continue
		}
		for _, r := range e.Envelope.Readings {
			n.fleet.Observe(client.NewReadingItem(i, e, r, false))
		}
	}
	return size - from
}

// fleetDevices lists the ledger's devices with the wake interval of their
// desired configuration.
func (n *Node) fleetDevices() ([]fleet.Device, error) {
	st, err := n.app.View(0)
	if err != nil {
		return nil, err
	}
	var out []fleet.Device
	after := ""
	for {
		ds, err := st.Devices("", after, 1000)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.Class == "gateway" {
				continue // gateways report their own health (metrics), not readings
			}
			fd := fleet.Device{ID: d.ID, Org: d.Org, Class: d.Class, Labels: d.Labels, Status: d.Status}
			if des, err := st.Desired(d.ID); err == nil {
				fd.Wake = client.WakeOf(des.Settings, 0)
			}
			out = append(out, fd)
		}
		if len(ds) < 1000 {
			return out, nil
		}
		after = ds[len(ds)-1].ID
	}
}

// fleetRules gives a census to the rules engine's fleet rules, if it has
// any (a census costs about 6 ms for 1,000 devices: none is taken for
// nothing).
func (n *Node) fleetRules() {
	if !hasFleetRule(n.rules.Rules()) {
		return
	}
	s, err := n.census.Refresh()
	if err != nil {
		n.log.Warn("fleet census", "err", err)
		return
	}
	n.rules.ObserveFleet(fleetCounts(s), s.At)
}

func hasFleetRule(rs []rules.Rule) bool {
	for _, r := range rs {
		if r.Fleet != nil {
			return true
		}
	}
	return false
}

// fleetCounts is a census as the rules engine takes it.
func fleetCounts(s *fleet.Summary) []rules.FleetCount {
	out := make([]rules.FleetCount, 0, len(s.Groups))
	for _, g := range s.Groups {
		out = append(out, rules.FleetCount{Org: g.Org, Class: g.Class, Devices: g.Devices, Silent: g.States[client.HealthSilent]})
	}
	return out
}
