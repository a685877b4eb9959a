package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/gateway"
)

// GatewayStats is what the gateway collector reads; *gateway.Gateway has it.
type GatewayStats interface {
	Stats() gateway.Stats
}

// LogSizer is what the data log gauge reads; *datalog.Log has it.
type LogSizer interface {
	Size() uint64 // entries in the log
}

var (
	_ GatewayStats = (*gateway.Gateway)(nil)
	_ LogSizer     = (*datalog.Log)(nil)
)

// Gateway adds the gateway's ingestion counters and the size of its data
// log:
//
//	thingnet_gateway_envelopes_accepted_total
//	thingnet_gateway_readings_stored_total
//	thingnet_gateway_rejected_total
//	thingnet_gateway_rate_limited_total
//	thingnet_gateway_overloaded_total
//	thingnet_gateway_offenders_total
//	thingnet_gateway_erased_total
//	thingnet_gateway_retention_dropped_total
//	thingnet_gateway_archived_total
//	thingnet_gateway_archive_unavailable_total
//	thingnet_gateway_log_size
func (r *Registry) Gateway(g *gateway.Gateway) { r.GatewaySource(g, g.Log()) }

// GatewaySource is Gateway over any GatewayStats and LogSizer; a nil log
// leaves out thingnet_gateway_log_size.
func (r *Registry) GatewaySource(s GatewayStats, log LogSizer) {
	const sub = "gateway"
	accepted := newDesc(sub, "envelopes_accepted_total", "Signed envelopes the gateway verified and stored in its data log.")
	readings := newDesc(sub, "readings_stored_total", "Readings stored in the data log (a batch envelope holds several).")
	rejected := newDesc(sub, "rejected_total",
		"Envelopes refused as malformed, from an unknown or inactive device, with a bad signature, or replayed.")
	limited := newDesc(sub, "rate_limited_total", "Envelopes refused by the per-device and per-source rate limits.")
	overloaded := newDesc(sub, "overloaded_total", "Envelopes refused because the verification queue was full.")
	offenders := newDesc(sub, "offenders_total", "Devices reported for exceeding their rate limits again and again.")
	erased := newDesc(sub, "erased_total", "Log entries whose values the gateway destroyed for erasures recorded on the ledger (their hashes and proofs remain).")
	dropped := newDesc(sub, "retention_dropped_total", "Log entries whose values the gateway dropped under their organisation's retention period.")
	archived := newDesc(sub, "archived_total", "Log entries whose bytes the gateway dropped once their archive segment was published and pinned (their hashes and proofs remain).")
	unavailable := newDesc(sub, "archive_unavailable_total", "Reads of archived log entries whose segment was lost (no node served it) or altered (digest or hashes did not check).")
	size := newDesc(sub, "log_size", "Entries in the gateway's append-only data log.")

	descs := []*prometheus.Desc{accepted, readings, rejected, limited, overloaded, offenders, erased, dropped, archived, unavailable}
	if log != nil {
		descs = append(descs, size)
	}
	r.reg.MustRegister(&snapshot{
		descs: descs,
		collect: func(ch chan<- prometheus.Metric) {
			st := s.Stats()
			counter(ch, accepted, st.Accepted)
			counter(ch, readings, st.Readings)
			counter(ch, rejected, st.Rejected)
			counter(ch, limited, st.Limited)
			counter(ch, overloaded, st.Overloaded)
			counter(ch, offenders, st.Offenders)
			counter(ch, erased, st.Erased)
			counter(ch, dropped, st.Expired)
			counter(ch, archived, st.Archived)
			counter(ch, unavailable, st.ArchiveUnavailable)
			if log != nil {
				gauge(ch, size, float64(log.Size()))
			}
		},
	})
}
