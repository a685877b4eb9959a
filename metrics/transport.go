package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/thingnet/thingnet/gateway/coap"
	"github.com/thingnet/thingnet/gateway/mqtt"
)

// MQTTStats is what the MQTT collector reads; *mqtt.Broker has it.
type MQTTStats interface {
	Stats() mqtt.Stats
}

// CoAPStats is what the CoAP collector reads; *coap.Server has it.
type CoAPStats interface {
	Stats() coap.Stats
}

var (
	_ MQTTStats = (*mqtt.Broker)(nil)
	_ CoAPStats = (*coap.Server)(nil)
)

// MQTT adds the broker's counters:
//
//	thingnet_mqtt_connections_accepted_total
//	thingnet_mqtt_connections_refused_total{reason}
//	thingnet_mqtt_readings_accepted_total
//	thingnet_mqtt_readings_duplicate_total
//	thingnet_mqtt_readings_refused_total{reason}
//	thingnet_mqtt_rate_limited_total{limit}
//	thingnet_mqtt_subscriptions_accepted_total
//	thingnet_mqtt_subscriptions_refused_total
//	thingnet_mqtt_packets_too_large_total
//
// mqtt.Stats has no count of open connections, so there is no gauge of them.
func (r *Registry) MQTT(b *mqtt.Broker) { r.MQTTSource(b) }

// MQTTSource is MQTT over any MQTTStats.
func (r *Registry) MQTTSource(s MQTTStats) {
	const sub = "mqtt"
	connAccepted := newDesc(sub, "connections_accepted_total", "MQTT sessions established (CONNACK success sent).")
	connRefused := newDesc(sub, "connections_refused_total",
		"MQTT connections refused, by reason (rate_limited, bad_credentials, not_authorized, client_id, unavailable, server_busy).",
		"reason")
	readAccepted := newDesc(sub, "readings_accepted_total",
		"Readings published over MQTT that the gateway stored, duplicates included.")
	readDuplicate := newDesc(sub, "readings_duplicate_total",
		"Readings published over MQTT that the gateway had already stored (counted in readings_accepted_total too).")
	readRefused := newDesc(sub, "readings_refused_total",
		"Readings published over MQTT and refused, by reason (acl, rate_limited, rejected, overloaded, error).", "reason")
	limited := newDesc(sub, "rate_limited_total",
		"MQTT rate-limit hits, by limit (connect_source, connect_device, message, control).", "limit")
	subAccepted := newDesc(sub, "subscriptions_accepted_total", "MQTT topic filters granted to subscribers.")
	subRefused := newDesc(sub, "subscriptions_refused_total", "MQTT topic filters refused by the ACL or as invalid.")
	tooLarge := newDesc(sub, "packets_too_large_total", "MQTT connections closed for a packet above the maximum packet size.")

	r.reg.MustRegister(&snapshot{
		descs: []*prometheus.Desc{connAccepted, connRefused, readAccepted, readDuplicate, readRefused,
			limited, subAccepted, subRefused, tooLarge},
		collect: func(ch chan<- prometheus.Metric) {
			st := s.Stats()
			counter(ch, connAccepted, st.ConnectionsAccepted)
			counters(ch, connRefused, st.ConnectionsRefused)
			counter(ch, readAccepted, st.ReadingsAccepted)
			counter(ch, readDuplicate, st.ReadingsDuplicate)
			counters(ch, readRefused, st.ReadingsRefused)
			counters(ch, limited, st.RateLimited)
			counter(ch, subAccepted, st.SubscribesAccepted)
			counter(ch, subRefused, st.SubscribesRefused)
			counter(ch, tooLarge, st.PacketsTooLarge)
		},
	})
}

// CoAP adds the server's counters and gauges:
//
//	thingnet_coap_datagrams_received_total
//	thingnet_coap_readings_accepted_total
//	thingnet_coap_readings_duplicate_total
//	thingnet_coap_requests_refused_total{reason}
//	thingnet_coap_datagrams_dropped_total{reason}
//	thingnet_coap_sessions
//	thingnet_coap_transfers
//	thingnet_coap_requests_in_flight
func (r *Registry) CoAP(s *coap.Server) { r.CoAPSource(s) }

// CoAPSource is CoAP over any CoAPStats.
func (r *Registry) CoAPSource(s CoAPStats) {
	const sub = "coap"
	datagrams := newDesc(sub, "datagrams_received_total", "UDP datagrams the CoAP server received.")
	accepted := newDesc(sub, "readings_accepted_total",
		"Readings posted over CoAP and answered 2.04 Changed, duplicates included.")
	duplicate := newDesc(sub, "readings_duplicate_total",
		"Readings posted over CoAP that the gateway had already stored (counted in readings_accepted_total too).")
	refused := newDesc(sub, "requests_refused_total",
		"CoAP requests answered with an error code, by reason (rate_limited, too_large, rejected, overloaded, busy, ...).",
		"reason")
	dropped := newDesc(sub, "datagrams_dropped_total",
		"CoAP datagrams not answered or answered with a Reset, by reason (malformed, ping, not_request, rate_limited, duplicate, amplification).",
		"reason")
	sessions := newDesc(sub, "sessions", "Client endpoints the CoAP server holds state for.")
	transfers := newDesc(sub, "transfers", "Block-wise uploads the CoAP server is assembling.")
	inFlight := newDesc(sub, "requests_in_flight", "CoAP requests being handled.")

	r.reg.MustRegister(&snapshot{
		descs: []*prometheus.Desc{datagrams, accepted, duplicate, refused, dropped, sessions, transfers, inFlight},
		collect: func(ch chan<- prometheus.Metric) {
			st := s.Stats()
			counter(ch, datagrams, st.Datagrams)
			counter(ch, accepted, st.Accepted)
			counter(ch, duplicate, st.Duplicates)
			counters(ch, refused, st.Refused)
			counters(ch, dropped, st.Dropped)
			gauge(ch, sessions, float64(st.Sessions))
			gauge(ch, transfers, float64(st.Transfers))
			gauge(ch, inFlight, float64(st.InFlight))
		},
	})
}
