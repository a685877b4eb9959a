package api

import (
	"net/http"
	"strings"
	"testing"

	cmtquery "github.com/cometbft/cometbft/libs/pubsub/query"
)

func TestEventQuery(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string // "" = refused
	}{
		{[]string{"file.cid=bafyabc"}, "file.cid='bafyabc'"},
		{[]string{"file.org=demo", "file.name=a b.bin"}, "file.org='demo' AND file.name='a b.bin'"},
		{[]string{"firmware.device=did:key:z6Mk=x"}, "firmware.device='did:key:z6Mk=x'"},
		{nil, ""},
		{[]string{"file.cid="}, ""},
		{[]string{"file=x"}, ""},
		{[]string{"File.cid=x"}, ""},
		{[]string{"file.cid"}, ""},
		{[]string{"file.cid=x' OR tx.height>'0"}, ""},
		{[]string{"file.cid=a\nb"}, ""},
		{[]string{"tx.height>0=1"}, ""},
		{[]string{"a.b=1", "a.b=2", "a.b=3", "a.b=4", "a.b=5"}, ""},
		{[]string{"file.name=" + strings.Repeat("x", 257)}, ""},
	} {
		got, err := eventQuery(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q: accepted as %q; want refused", tc.in, got)
			} else if ae, ok := err.(*apiError); !ok || ae.status != http.StatusBadRequest {
				t.Errorf("%q: %v; want a bad_request", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzEventQuery: whatever the filters, the query is refused or is one
// CometBFT parses, with exactly one condition per filter (a value cannot
// add conditions of its own).
func FuzzEventQuery(f *testing.F) {
	f.Add("file.cid=bafyabc", "file.org=demo")
	f.Add("firmware.action=release", "")
	f.Add("file.cid=x' AND tx.height>'0", "")
	f.Fuzz(func(t *testing.T, a, b string) {
		in := []string{a}
		if b != "" {
			in = append(in, b)
		}
		q, err := eventQuery(in)
		if err != nil {
			return
		}
		parsed, err := cmtquery.New(q)
		if err != nil {
			t.Fatalf("%q gave %q, which CometBFT does not parse: %v", in, q, err)
		}
		if n := len(parsed.Syntax()); n != len(in) {
			t.Fatalf("%q gave %q: %d conditions; want %d", in, q, n, len(in))
		}
	})
}
