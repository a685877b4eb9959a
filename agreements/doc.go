// Package agreements is thingnet's agreement language and its execution
// engine: a YAML (or JSON) document names parties (devices and
// organisations), typed state variables and transitions; a transition has a
// trigger (a party's signed call, a proven reading of a device, a block
// height, another agreement's event), a guard written in CEL and effects
// (set state, move or escrow credits, command a device, add or revoke a
// grant, suspend a device, emit an event, finish).
//
// The package is pure: no clock, randomness, I/O or goroutines. Parse
// checks the document's structure, Compile type-checks every CEL
// expression against the declared variables and refuses any whose
// estimated worst-case cost exceeds the limit, and Program.Fire runs one
// transition on an Instance and returns the new instance and the effects
// that the ledger applies. The same document, instance and input give the
// same result on every machine.
package agreements
