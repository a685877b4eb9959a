package device

import (
	"encoding/json"
	"testing"
)

// FuzzSlotState: the slots' state decoder never panics; what it accepts
// names slot a or b, and an installed release with its digest and size.
func FuzzSlotState(f *testing.F) {
	f.Add([]byte(`{"active":"a","running":{"version":"factory","seq":0}}`))
	f.Add([]byte(`{"active":"b","running":{"vendor":"acme","version":"2","seq":2,"digest":"` + b64zeros + `","size":10},"previous":{"version":"1","seq":1,"digest":"` + b64zeros + `","size":3}}`))
	f.Add([]byte(`{"active":"c"}`))
	f.Add([]byte(`{"active":"a","running":{"seq":5}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseSlotState(b)
		if err != nil {
			return
		}
		if st.Active != "a" && st.Active != "b" {
			t.Fatalf("accepted slot %q", st.Active)
		}
		if st.Running.Seq > 0 && (len(st.Running.Digest) != 32 || st.Running.Size == 0) {
			t.Fatalf("accepted %+v", st.Running)
		}
		if _, err := json.Marshal(&st); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzUpdateState: the updater's state decoder never panics; what it
// accepts names a release with a SHA-256 digest.
func FuzzUpdateState(f *testing.F) {
	f.Add([]byte(`{"vendor":"acme","seq":3,"version":"3","digest":"` + b64zeros + `","attempts":2,"gave_up":true,"reason":"x"}`))
	f.Add([]byte(`{"seq":0}`))
	f.Add([]byte(`{"seq":1,"digest":"AAAA","attempts":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseUpdateState(b)
		if err != nil {
			return
		}
		if st.Seq == 0 || len(st.Digest) != 32 || st.Attempts < 0 {
			t.Fatalf("accepted %+v", st)
		}
	})
}

const b64zeros = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
