package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParse: a rules file or condition from outside is parsed without
// panicking; what is accepted compiles again to the same, and what is
// refused for its condition says where.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[[rules]]\nname = \"hot\"\norg = \"acme\"\nwhen = \"mean(temperature, 5m) > 30 && count(5m) >= 3\"\ncooldown = \"10m\"\n[rules.devices]\nclasses = [\"sensor\"]\n[rules.action]\nwebhook = \"https://example.com/hook\"\n"))
	f.Add([]byte("[[rules]]\nname = \"x\"\norg = \"o\"\nwhen = \"last(humidity) < 10.0 || min('temperature/celsius', 30s) < -5.0\"\n"))
	f.Add([]byte("[[rules]]\nname = \"bad\"\norg = \"o\"\nwhen = \"mean(t, 5m) >\"\n"))
	f.Add([]byte("mean(temperature, 5m) > 30"))
	f.Fuzz(func(t *testing.T, src []byte) {
		rs, err := Parse(src, DefaultLimits())
		if err == nil {
			for i := range rs {
				if _, err := rs[i].Check(DefaultLimits()); err != nil {
					t.Fatalf("a parsed rule does not check again: %v", err)
				}
			}
		}
		_, err = Compile("f", string(src), DefaultLimits())
		var re *Error
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("a bad condition's error is not a rules.Error: %v", err)
		}
	})
}

// FuzzDecodeState: a saved state file (the node's rules state) that does
// not decode or check is refused with an error, never restored in part;
// one that is accepted restores into an engine without panicking.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"version":1,"states":[{"rule":"hot","subject":"d","active":true,"last_fire":"2026-01-01T00:00:00Z"}],"windows":[{"device":"d","type":"temperature","t":[1,2],"v":[20,40]}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"windows":[{"device":"d","t":[1],"v":[]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeState(b)
		if err != nil {
			return
		}
		e, err := NewEngine(Config{Rules: []Rule{{Name: "hot", Org: "o", When: "count(5m) > 1"}}, MaxPoints: 10, MaxDevices: 10})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Restore(s); err != nil {
			t.Fatalf("a checked state did not restore: %v", err)
		}
	})
}

// FuzzDecodeJSON: a POST /v1/rules body is decoded and checked without
// panicking; what is accepted checks again (its call arguments already
// made ints).
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"rules":[{"name":"hot","org":"acme","when":"last(temperature) > 30.0","cooldown":"10m","action":{"webhook":"https://example.com/h","rate":5}}]}`))
	f.Add([]byte(`{"rules":[{"name":"q","org":"acme","fleet":{"class":"sensor","silent_over":2},"action":{"call":{"agreement":7,"transition":"alarm","args":{"level":2,"zone":"n","on":true}}}}]}`))
	f.Add([]byte(`{"rules":[{"name":"x","org":"o","when":"true","action":{"call":{"agreement":1,"transition":"t","args":{"f":1.5}}}}]}`))
	f.Add([]byte(`{"rules":[],"extra":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeJSON(b, DefaultLimits())
		if err != nil {
			return
		}
		if err := CheckAll(rs, DefaultLimits()); err != nil {
			t.Fatalf("decoded rules do not check again: %v", err)
		}
	})
}

// FuzzParseOutbox: an outbox file (a rule's firings, "done" lines, a last
// line cut short) parses without panicking; what parses is a list of
// firings no longer than the file's lines, and writing them out as an
// outbox parses back to the same.
func FuzzParseOutbox(f *testing.F) {
	f.Add([]byte("{\"rule\":\"hot\",\"device\":\"d\",\"seq\":1}\n{\"rule\":\"hot\",\"seq\":2}\ndone\n{\"rule\":\"hot\",\"se"))
	f.Add([]byte("done\n"))
	f.Add([]byte("{\"rule\":1}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, last, err := parseOutbox(b)
		if err != nil {
			return
		}
		subjects := map[string]bool{}
		for _, f := range last {
			k := f.Rule + "\x00" + f.subject()
			if subjects[k] {
				t.Fatalf("two last firings of %q", k)
			}
			subjects[k] = true
		}
		if len(fs) > bytes.Count(b, []byte("\n")) {
			t.Fatalf("%d firings from %d lines", len(fs), bytes.Count(b, []byte("\n")))
		}
		var out []byte
		for _, x := range fs {
			line, err := json.Marshal(x)
			if err != nil {
				t.Fatal(err)
			}
			out = append(append(out, line...), '\n')
		}
		again, _, err := parseOutbox(out)
		if err != nil || len(again) != len(fs) {
			t.Fatalf("written out and parsed again: %d firings, %v; want %d", len(again), err, len(fs))
		}
	})
}
