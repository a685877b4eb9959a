package api

import (
	"encoding/json"
	"testing"
)

func TestPageOf(t *testing.T) {
	id := func(n int) string { return string(rune('a' + n)) }
	cases := []struct {
		name  string
		items []int
		limit int
		want  string
	}{
		{"nothing", nil, 10, `{"height":7,"items":[]}`},
		{"a partial page: the end", []int{1, 2}, 10, `{"height":7,"items":[1,2]}`},
		{"a full page: the last item's cursor", []int{1, 2, 3}, 3, `{"height":7,"items":[1,2,3],"next":"d"}`},
		{"no limit: never a next page", []int{1}, 0, `{"height":7,"items":[1]}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(pageOf(7, c.items, c.limit, id))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("%s: %s; want %s", c.name, b, c.want)
		}
	}
}
