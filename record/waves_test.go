package record

import "testing"

// The firmware rollout's buckets are those of the shared wave type, and
// did not change when it moved there (devices and the ledger must agree).
func TestRolloutBucketsUnchanged(t *testing.T) {
	r := &FirmwareRolloutRecord{FirmwareRollout: FirmwareRollout{Org: "acme", Class: "sensor", Percent: 10, BlocksPerWave: 5}, Start: 7}
	if got := r.Bucket("did:key:z6Mkexample"); got != 29 {
		t.Errorf("Bucket = %d; want 29 (the value before record.Waves)", got)
	}
}

// Waves: wave w opens Blocks apart; n waves of WavePercent(n) cover
// every bucket by the last one.
func TestWaves(t *testing.T) {
	for _, n := range []uint32{1, 3, 7, 100} {
		w := Waves{Seed: "job/acme/1", Start: 10, Percent: WavePercent(n), Blocks: 4}
		if w.Wave(9) != 0 || w.Wave(10) != 1 || w.Wave(14) != 2 {
			t.Errorf("%d waves: Wave(9, 10, 14) = %d, %d, %d; want 0, 1, 2", n, w.Wave(9), w.Wave(10), w.Wave(14))
		}
		last := int64(10 + 4*(n-1))
		for i := range 500 {
			dev := string(rune('a'+i%26)) + string(rune('a'+i/26))
			if wo := w.WaveOf(dev); wo < 1 || wo > uint64(n) {
				t.Fatalf("%d waves: WaveOf(%s) = %d", n, dev, wo)
			}
			if !w.Open(dev, last) || w.Open(dev, 9) {
				t.Fatalf("%d waves: %s open at the last wave %v, before the start %v", n, dev, w.Open(dev, last), w.Open(dev, 9))
			}
			if wo := w.WaveOf(dev); w.Open(dev, 10+4*int64(wo-1)-1) && wo > 1 {
				t.Fatalf("%d waves: %s (wave %d) open before its wave", n, dev, wo)
			}
		}
	}
}
