// Package qemu runs the minimal device program (cmd/thingnet-device) as
// the boards it is built for would: cross-built for linux/arm, mipsle,
// arm64 and riscv64, the arm and mipsle builds run under Debian's
// qemu-user against a devnet, measured against the native amd64 build in
// the same run (docs/device-sdk.md, docs/devices.md). A long test:
// scripts/e2e runs it (THINGNET_E2E=1).
package qemu
