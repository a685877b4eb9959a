package metrics

import (
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric this package defines.
const namespace = "thingnet"

// Registry collects a node's metrics without globals: its own
// prometheus.Registry. Each component method registers one collector and
// panics if that collector is registered twice (a programming error), so
// call each at most once per Registry.
type Registry struct {
	reg *prometheus.Registry
}

// New returns a Registry holding the Go runtime and process collectors.
func New() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return &Registry{reg: reg}
}

// Handler is the /metrics endpoint: the registry in the Prometheus
// exposition formats. A collector that fails is reported in the response
// rather than failing the whole scrape.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          r.reg, // promhttp_metric_handler_errors_total
		EnableOpenMetrics: true,
	})
}

// Gatherer is the underlying registry, for tests and for pushing or
// merging with other registries.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Register adds another collector, for metrics this package does not know.
func (r *Registry) Register(c prometheus.Collector) error { return r.reg.Register(c) }

// snapshot is a collector built from descriptors and a function that reads
// one snapshot and emits its values.
type snapshot struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func (s *snapshot) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range s.descs {
		ch <- d
	}
}

func (s *snapshot) Collect(ch chan<- prometheus.Metric) { s.collect(ch) }

// newDesc describes thingnet_<subsystem>_<name>, with the variable labels
// given.
func newDesc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
}

// counters emits one counter per key of m, labelled by key, in key order.
func counters(ch chan<- prometheus.Metric, d *prometheus.Desc, m map[string]uint64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(m[k]), k)
	}
}
