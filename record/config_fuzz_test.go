package record

import (
	"testing"
)

// FuzzDecodeConfigRecord: a desired configuration from a proof never
// panics the decoder, and what it accepts re-encodes to the same bytes
// (deterministic CBOR: one encoding per record) and holds valid settings.
func FuzzDecodeConfigRecord(f *testing.F) {
	f.Add(MustMarshal(&ConfigRecord{Org: "acme", Scope: ConfigClass, Name: "sensor", Version: 3,
		Settings: map[string]any{"wake_s": 30, "mode": "eco", "gain": 1.5, "on": true}, Signer: "did:key:z6Mk", Height: 9}))
	f.Add(MustMarshal(&ConfigRecord{Org: "acme", Scope: ConfigLabel, Name: "site=north", Version: 1, Grant: 4}))
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeConfigRecord(b)
		if err != nil {
			return
		}
		if err := ValidateSettings(r.Settings); err != nil {
			t.Fatalf("accepted settings are invalid: %v", err)
		}
		if _, err := Marshal(r); err != nil {
			t.Fatalf("accepted record does not re-encode: %v", err)
		}
	})
}

// FuzzDecodeConfigReport: a reported configuration (a reading's bytes,
// from any device) never panics the decoder; what it accepts re-encodes
// and holds only valid settings.
func FuzzDecodeConfigReport(f *testing.F) {
	f.Add(MustMarshal(&ConfigReport{Height: 7, Layers: []ConfigLayer{{Scope: ConfigClass, Name: "sensor", Version: 2, Height: 5}},
		Applied: map[string]any{"wake_s": 30}, Refused: []ConfigRefusal{{Setting: "x", Reason: "no handler"}}, Unproved: []string{"http://gw"}}))
	f.Add([]byte{0xa1, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeConfigReport(b)
		if err != nil {
			return
		}
		for k, v := range r.Applied {
			if ValidateSettingName(k) != nil {
				t.Fatalf("accepted setting name %q", k)
			}
			if _, err := ConfigValue(v); err != nil {
				t.Fatalf("accepted value %v: %v", v, err)
			}
		}
		if _, err := Marshal(r); err != nil {
			t.Fatalf("accepted report does not re-encode: %v", err)
		}
	})
}

// FuzzDecodeStatusReport: a device's status report never panics the
// decoder; what it accepts re-encodes and validates.
func FuzzDecodeStatusReport(f *testing.F) {
	b, sig := 87.5, -71.0
	f.Add(MustMarshal(&StatusReport{Battery: &b, Signal: &sig, Uptime: 3600, FreeMem: 20480, Firmware: "1.2.0", WakeS: 30}))
	f.Add([]byte{0xa1, 0x01, 0xf9, 0x7e, 0x00})
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := DecodeStatusReport(raw)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted report is invalid: %v", err)
		}
		if _, err := Marshal(s); err != nil {
			t.Fatalf("accepted report does not re-encode: %v", err)
		}
	})
}
