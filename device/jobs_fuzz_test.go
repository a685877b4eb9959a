package device

import (
	"testing"

	"github.com/thingnet/thingnet/record"
)

// FuzzJobsState: the jobs' state decoder (jobs.state in the state
// directory) never panics; what it accepts has valid keys and outcomes and
// re-encodes.
func FuzzJobsState(f *testing.F) {
	f.Add(record.MustMarshal(&jobsState{Jobs: map[string]*jobEntry{
		"demo/1": {Started: true, Outcome: record.JobSucceeded, Reported: true},
		"demo/2": {Started: true},
		"acme/9": {Outcome: record.JobRejected, Reason: "no handler for command x"},
	}}))
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x01, 0xa1, 0x61, 0x41, 0xf6})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseJobsState(b)
		if err != nil {
			return
		}
		for k, e := range st.Jobs {
			if e == nil || e.Outcome == "" && e.Reported {
				t.Fatalf("accepted entry %s: %+v", k, e)
			}
		}
		if _, err := record.Marshal(st); err != nil {
			t.Fatalf("accepted state does not re-encode: %v", err)
		}
	})
}
