package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/thingnet/thingnet/export"
)

// Exports adds the export connectors' state (package export), labelled
// by export name and kind:
//
//	thingnet_export_lag_entries
//	thingnet_export_lag_seconds
//	thingnet_export_checkpoint
//	thingnet_export_delivered_total
//	thingnet_export_retried_total
//	thingnet_export_failed_total
//	thingnet_export_skipped_total
func (r *Registry) Exports(status func() []export.Status) {
	const sub = "export"
	labels := []string{"export", "kind"}
	lag := newDesc(sub, "lag_entries", "Log entries the export has not written yet (one envelope each: a reading or a device's batch).", labels...)
	lagSec := newDesc(sub, "lag_seconds", "Seconds since the export last caught up with the log (0 while it is).", labels...)
	cp := newDesc(sub, "checkpoint", "The next log index the export writes.", labels...)
	delivered := newDesc(sub, "delivered_total", "Readings the export wrote (committed, acknowledged or delivered).", labels...)
	retried := newDesc(sub, "retried_total", "Reads, writes and deliveries the export tried again after a failure.", labels...)
	failed := newDesc(sub, "failed_total", "Writes that failed, and webhook deliveries given up on (dead-lettered).", labels...)
	skipped := newDesc(sub, "skipped_total", "Log entries the export's identity may not read (not exported).", labels...)
	r.reg.MustRegister(&snapshot{
		descs: []*prometheus.Desc{lag, lagSec, cp, delivered, retried, failed, skipped},
		collect: func(ch chan<- prometheus.Metric) {
			for _, s := range status() {
				l := []string{s.Name, s.Kind}
				ch <- prometheus.MustNewConstMetric(lag, prometheus.GaugeValue, float64(s.LagEntries), l...)
				ch <- prometheus.MustNewConstMetric(lagSec, prometheus.GaugeValue, s.LagSeconds, l...)
				ch <- prometheus.MustNewConstMetric(cp, prometheus.GaugeValue, float64(s.Checkpoint), l...)
				ch <- prometheus.MustNewConstMetric(delivered, prometheus.CounterValue, float64(s.Delivered), l...)
				ch <- prometheus.MustNewConstMetric(retried, prometheus.CounterValue, float64(s.Retried), l...)
				ch <- prometheus.MustNewConstMetric(failed, prometheus.CounterValue, float64(s.Failed), l...)
				ch <- prometheus.MustNewConstMetric(skipped, prometheus.CounterValue, float64(s.Skipped), l...)
			}
		},
	})
}
