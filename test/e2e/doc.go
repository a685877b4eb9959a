// Package e2e holds thingnet's end-to-end fault and attack scenarios. They
// run real `thingnet node` processes, each in its own Linux network
// namespace with its own address (loopback ports where namespaces are not
// permitted), drive them only through public interfaces (the CLI, the HTTP
// API, MQTT), inject faults (SIGKILL, network partitions) and check
// invariants at the end: no fork, nothing acknowledged lost, nothing forged
// accepted. See docs/e2e.md; run the long version with scripts/e2e.
package e2e
