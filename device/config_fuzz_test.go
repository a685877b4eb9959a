package device

import (
	"testing"

	"github.com/thingnet/thingnet/record"
)

// FuzzConfigState: the applied configuration's decoder (config.state in
// the state directory) never panics; what it accepts holds only valid
// settings and re-encodes.
func FuzzConfigState(f *testing.F) {
	f.Add(record.MustMarshal(&configState{Versions: map[string]uint64{"class/sensor": 3, "device/did:key:z6Mk": 1},
		Applied: map[string]any{"wake_s": 30, "mode": "eco"}, Reported: []byte{0xa1, 0x01, 0x00}}))
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x02, 0xa1, 0x61, 0x41, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseConfigState(b)
		if err != nil {
			return
		}
		for k, v := range st.Applied {
			if record.ValidateSettingName(k) != nil {
				t.Fatalf("accepted setting %q", k)
			}
			if _, err := record.ConfigValue(v); err != nil {
				t.Fatalf("accepted value %v: %v", v, err)
			}
		}
		if _, err := record.Marshal(st); err != nil {
			t.Fatal(err)
		}
	})
}
