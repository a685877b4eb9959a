package record

import (
	"crypto/sha256"
	"encoding/binary"
)

// Waves opens something to a fleet in waves — a firmware rollout, a job
// (docs/management.md, "Commands and jobs"): every device has a bucket,
// 0..99, drawn from the SHA-256 of Seed and its id; wave w (from 1) opens
// at height Start + (w-1) × Blocks and covers the buckets below
// w × Percent. The ledger and each device compute it alike from the record,
// so a device knows whether its wave is open without asking anyone.
type Waves struct {
	Seed    string // one per rollout or job, so a device is early in one and late in another
	Start   int64  // height the first wave opens
	Percent uint32 // devices per wave, percent 1..100
	Blocks  uint32 // blocks between waves, ≥ 1
}

// Wave is the wave open at height h (from 1; 0 before Start).
func (w Waves) Wave(h int64) uint64 {
	if h < w.Start || w.Blocks == 0 {
		return 0
	}
	return 1 + uint64(h-w.Start)/uint64(w.Blocks)
}

// Bucket is a device's place, 0..99.
func (w Waves) Bucket(device string) uint64 {
	h := sha256.Sum256([]byte(w.Seed + "\x00" + device))
	return binary.BigEndian.Uint64(h[:8]) % 100
}

// WaveOf is the wave that covers device (from 1).
func (w Waves) WaveOf(device string) uint64 {
	if w.Percent == 0 {
		return 0
	}
	return 1 + w.Bucket(device)/uint64(w.Percent)
}

// Open reports whether device's wave is open at height h.
func (w Waves) Open(device string, h int64) bool {
	return w.Bucket(device) < w.Wave(h)*uint64(w.Percent)
}

// WavePercent is the percent per wave that covers every device in n waves.
func WavePercent(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return (100 + n - 1) / n
}
