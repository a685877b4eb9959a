// Package firmware is what a device checks before it installs a release,
// with no file service of its own: a vendor signs a firmware manifest (a
// SUIT-like subset, record.FirmwareManifest) as a COSE_Sign1 (Sign); a
// device verifies it against the vendor key, its class and the sequence
// number it runs (Verify), and checks the image against the manifest's
// digest and size while it is fetched (ImageChecker), from the mesh
// (package files, over bitswap) or from a gateway over HTTP.
package firmware
