// Package metrics exposes a node's counters to Prometheus.
//
// A Registry owns its own prometheus.Registry (no package globals) and
// serves it with Handler. Each component is added with one call — Ledger,
// CheckTxRejections, Gateway, MQTT, CoAP — which registers a custom
// prometheus.Collector that reads the component's Stats snapshot when
// Prometheus scrapes: nothing is counted twice, nothing is added to the hot
// paths, and no goroutine runs. The *Source variants take small interfaces
// so tests (and other implementations) can supply their own snapshots.
//
// Every metric is named thingnet_<component>_<what>, counters end in
// _total, and counters broken down by a reason carry every reason the
// component defines, zeros included, so a rate() never starts from nothing.
package metrics
