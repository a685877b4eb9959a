// Package node is the only place that assembles a thingnet node: the ledger
// application inside an embedded CometBFT node, and, as its configuration
// (<home>/thingnet.toml, [Config]) says, the gateway with MQTT and CoAP, the
// mesh with mailboxes and files, the events watcher and the HTTP API with
// metrics and the explorer. [Start] wires them in one order and [Node.Close]
// stops them in the reverse. [DevConfig] and [TestConfig] describe node i of
// a local network, and [StartNet] runs N nodes on one machine: devnets and
// test networks are such nodes, not a wiring of their own.
package node
