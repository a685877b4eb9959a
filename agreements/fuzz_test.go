package agreements

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/thingnet/thingnet/agreements/lang"
)

// FuzzParse: Parse and Compile never panic, and every refusal is an *Error.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "examples", "agreements", "*.yaml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"agreement": "j", "parties": {"a": "org"}, "transitions": {"t": {"on": {"call": "a"}, "do": [{"finish": true}]}}}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := lang.Parse(src)
		if err != nil {
			var e *lang.Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error %T is not *Error: %v", err, err)
			}
			return
		}
		bind := map[string]string{}
		for _, p := range d.Parties {
			if p.ID == "" {
				if p.Kind == lang.PartyOrg {
					bind[p.Name] = "org-" + string(rune('a'+len(bind)%26))
				} else {
					bind[p.Name] = devA
				}
			}
		}
		p, err := Compile(d, bind, lang.DefaultLimits())
		if err != nil {
			var e *lang.Error
			if !errors.As(err, &e) {
				t.Fatalf("Compile error %T is not *Error: %v", err, err)
			}
			return
		}
		in, err := p.Init(1, 1)
		if err != nil {
			return
		}
		for _, tr := range d.Transitions {
			_, _ = p.Fire(in, tr.Name, &Input{Agreement: 1, Height: 2, SignerParties: []string{"a"}})
		}
	})
}
