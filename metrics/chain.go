package metrics

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/thingnet/thingnet/events"
)

// ChainSource is what the consensus collector reads; *events.Watcher has it.
type ChainSource interface {
	Stats() events.ChainStats
}

// Chain adds what a node sees of consensus, counted from the blocks it
// commits: thingnet_consensus_height, thingnet_consensus_block_time_seconds
// (header time of the last block, Unix), the histogram
// thingnet_consensus_block_interval_seconds, and
// thingnet_ledger_txs_committed_total{kind,result} (rate() of it is tx/s
// by kind).
func (r *Registry) Chain(src ChainSource) {
	height := newDesc("consensus", "height", "Height of the last block this node saw committed.")
	blockTime := newDesc("consensus", "block_time_seconds", "Header time of the last committed block, in Unix seconds.")
	blocks := newDesc("consensus", "blocks_total", "Blocks this node saw committed since it started.")
	interval := newDesc("consensus", "block_interval_seconds", "Time between consecutive block headers.")
	txs := newDesc("ledger", "txs_committed_total",
		"Transactions committed in blocks since start, by kind and result (ok, or the code execution refused them with).", "kind", "result")
	transitions := newDesc("agreements", "transitions_total",
		"Agreement transitions executed in committed blocks, by trigger (call, reading, height, event).", "trigger")
	r.reg.MustRegister(&snapshot{
		descs: []*prometheus.Desc{height, blockTime, blocks, interval, txs, transitions},
		collect: func(ch chan<- prometheus.Metric) {
			s := src.Stats()
			gauge(ch, height, float64(s.Height))
			if !s.BlockTime.IsZero() {
				gauge(ch, blockTime, float64(s.BlockTime.UnixNano())/1e9)
			}
			counter(ch, blocks, s.Blocks)
			b := make(map[float64]uint64, len(s.Buckets))
			for i, ub := range s.Buckets {
				b[ub] = s.IntervalCounts[i]
			}
			ch <- prometheus.MustNewConstHistogram(interval, s.Intervals, s.IntervalSum, b)
			kinds := make([]string, 0, len(s.Committed))
			for k := range s.Committed {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			for _, k := range kinds {
				results := make([]string, 0, len(s.Committed[k]))
				for res := range s.Committed[k] {
					results = append(results, res)
				}
				sort.Strings(results)
				for _, res := range results {
					ch <- prometheus.MustNewConstMetric(txs, prometheus.CounterValue, float64(s.Committed[k][res]), k, res)
				}
			}
			counters(ch, transitions, s.Transitions)
		},
	})
}

// Events adds thingnet_events_published_total,
// thingnet_events_dropped_total and thingnet_events_streams (open SSE
// streams), read from the node's event bus and stream.
func (r *Registry) Events(bus *events.Bus, stream *events.Stream) {
	published := newDesc("events", "published_total", "Events published on the node's event bus.")
	dropped := newDesc("events", "dropped_total", "Event deliveries lost because a subscriber fell behind.")
	streams := newDesc("events", "streams", "Open server-sent event streams (GET /v1/events).")
	r.reg.MustRegister(&snapshot{
		descs: []*prometheus.Desc{published, dropped, streams},
		collect: func(ch chan<- prometheus.Metric) {
			s := bus.Stats()
			counter(ch, published, s.Published)
			counter(ch, dropped, s.Dropped)
			gauge(ch, streams, float64(stream.Clients()))
		},
	})
}
