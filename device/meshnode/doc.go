// Package meshnode is the opt-in full-device side of the SDK: a device
// that also runs a node on the mesh (a libp2p host whose key is the
// device key, its ledger answers proved by the device's light client) and
// fetches files over bitswap.
//
// Package device links none of it: a device that only sends readings,
// proves state and reads its mailbox over HTTP imports device alone, and
// builds small for any GOOS=linux architecture. A full device imports this
// package too and hands the node to its Agent (Agent.Mesh) and its file
// service to its Device (Device.UseFiles).
package meshnode
