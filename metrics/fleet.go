package metrics

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thingnet/thingnet/fleet"
)

// Fleet adds fleet health per organisation and class (package fleet), from
// the gateway's own last-seen tracker and the ledger's device records:
//
//	thingnet_fleet_devices{org,class,state}
//	thingnet_fleet_last_seen_max_age_seconds{org,class}
//	thingnet_fleet_census_seconds
//
// The labels are organisation × class × state only, never a device id, so
// the series are bounded by the ledger's organisations and classes. The
// census is computed at scrape time and reused for its MaxAge (10 s), so
// scrapes cost at most one census each MaxAge.
func (r *Registry) Fleet(summary func() (*fleet.Summary, error)) {
	const sub = "fleet"
	devices := newDesc(sub, "devices", "Devices by organisation, class and health state (ok, silent, never, or their ledger status), as this gateway sees them.", "org", "class", "state")
	age := newDesc(sub, "last_seen_max_age_seconds", "The longest time since an active device of the organisation and class was last seen by this gateway (among those it has seen).", "org", "class")
	took := newDesc(sub, "census_seconds", "What computing the latest fleet census took.")
	r.reg.MustRegister(&snapshot{
		descs: []*prometheus.Desc{devices, age, took},
		collect: func(ch chan<- prometheus.Metric) {
			s, err := summary()
			if err != nil {
				ch <- prometheus.NewInvalidMetric(devices, err)
				return
			}
			for _, g := range s.Groups {
				for _, st := range slices.Sorted(maps.Keys(g.States)) {
					ch <- prometheus.MustNewConstMetric(devices, prometheus.GaugeValue, float64(g.States[st]), g.Org, g.Class, st)
				}
				ch <- prometheus.MustNewConstMetric(age, prometheus.GaugeValue, g.MaxAge.Seconds(), g.Org, g.Class)
			}
			gauge(ch, took, s.Took.Seconds())
		},
	})
}
