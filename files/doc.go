// Package files shares content-addressed files over the mesh: UnixFS
// import and export (balanced DAG, 256 KiB chunks, CIDv1 with raw leaves,
// the same CIDs as kubo), bitswap over the mesh node's libp2p host,
// providers announced in the mesh's DHT, a bounded block store (pinned DAGs
// plus an LRU cache under a ceiling) on Pebble, and private files:
// chunked AEAD encryption with a random content key wrapped with HPKE for
// each recipient (docs/files.md). What a device checks before it installs
// a firmware release is in package files/firmware, which needs no service.
package files
