// Package edge is the contract between the gateway and its transports
// (gateway/mqtt, gateway/coap and the gateway's HTTP routes): the Ingestor
// the transports hand signed readings to, the sentinel errors its answers
// wrap, the rate-limit keys of a device and of a source address, and the
// Tally the transports count their outcomes with. The transports import
// this package and not each other; package gateway implements it.
//
// # One key per device, charged once per message
//
// A device is rate-limited under DeviceKey(id) whichever transport it uses,
// and each of its messages is charged to that key once:
//
//   - by the transport, when the transport authenticated the device itself
//     (MQTT: every PUBLISH, SUBSCRIBE and UNSUBSCRIBE, before any other
//     work on it); it then passes the device id to Ingestor.Ingest, which
//     does not charge the envelope again;
//   - otherwise by the Ingestor, under the device the envelope names, once
//     it has decoded it (CoAP and HTTP authenticate no device and pass "").
//
// A source address is limited under SourceKey, by the transport, before it
// looks at anything else.
package edge
