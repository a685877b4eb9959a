package metrics

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thingnet/thingnet/api"
)

// APISource is what the API collector reads; *api.Server has it.
type APISource interface {
	Stats() api.Stats
}

// API adds thingnet_api_requests_total{route,status} (requests by mux
// route, "unmatched" for unknown paths, and status class) and
// thingnet_api_proofs_served_total (answers a light client checks: state
// proofs, signed headers, reading proofs).
func (r *Registry) API(src APISource) {
	requests := newDesc("api", "requests_total", "HTTP API requests, by route and status class (2xx, 4xx, 5xx).", "route", "status")
	proofs := newDesc("api", "proofs_served_total",
		"Proofs served: ?prove=true reads (inclusion or absence), /v1/proofs, signed headers, reading proofs.")
	r.reg.MustRegister(&snapshot{
		descs: []*prometheus.Desc{requests, proofs},
		collect: func(ch chan<- prometheus.Metric) {
			s := src.Stats()
			sort.Slice(s.Requests, func(i, j int) bool {
				a, b := s.Requests[i], s.Requests[j]
				return a.Route < b.Route || a.Route == b.Route && a.Status < b.Status
			})
			for _, c := range s.Requests {
				ch <- prometheus.MustNewConstMetric(requests, prometheus.CounterValue, float64(c.Count), c.Route, c.Status)
			}
			counter(ch, proofs, s.Proofs)
		},
	})
}
