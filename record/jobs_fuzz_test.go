package record

import "testing"

// FuzzDecodeJobRecord: a job from a proof (what a device runs a command
// on) never panics the decoder; what it accepts re-encodes and holds a
// valid job.
func FuzzDecodeJobRecord(f *testing.F) {
	f.Add(MustMarshal(&JobRecord{ID: 3, JobCreate: JobCreate{Org: "acme", Command: "ping", Args: map[string]any{"n": 2, "msg": "hi"},
		Target: JobTarget{Class: "sensor"}, Waves: 3, BlocksPerWave: 5, MaxFailures: 2, TimeoutBlocks: 40},
		Signer: "did:key:z6Mk", Start: 9, Timeout: 49, State: JobActive, Failed: 1}))
	f.Add(MustMarshal(&JobRecord{ID: 1, JobCreate: JobCreate{Org: "acme", Command: "report-now", Target: JobTarget{Label: "site=north"},
		Waves: 1, BlocksPerWave: 1, MaxFailures: 1, TimeoutBlocks: 1}, State: JobAborted, Grant: 4}))
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := DecodeJobRecord(b)
		if err != nil {
			return
		}
		if err := j.JobCreate.ValidateBasic(); err != nil {
			t.Fatalf("accepted job is invalid: %v", err)
		}
		if _, err := Marshal(j); err != nil {
			t.Fatalf("accepted job does not re-encode: %v", err)
		}
	})
}

// FuzzDecodeJobIndex: a target's job index from a proof never panics the
// decoder and what it accepts is bounded and in order.
func FuzzDecodeJobIndex(f *testing.F) {
	f.Add(MustMarshal(&JobIndex{IDs: []uint64{1, 4, 9}}))
	f.Add(MustMarshal(&JobIndex{}))
	f.Add([]byte{0xa1, 0x01, 0x82, 0x02, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := DecodeJobIndex(b)
		if err != nil {
			return
		}
		if len(x.IDs) > MaxOpenJobs {
			t.Fatalf("accepted an index of %d jobs", len(x.IDs))
		}
	})
}
