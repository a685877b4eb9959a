package rules

import (
	"sort"
	"strings"
	"time"
)

// point is one reading in a window.
type point struct {
	t time.Time
	v float64
}

// deviceWindows holds a device's recent numeric readings per content type,
// in time order: those within span of the newest, at most maxPoints per
// type (the oldest go first).
type deviceWindows struct {
	byType    map[string][]point
	span      time.Duration
	maxPoints int
	newest    time.Time
	dropped   uint64 // readings dropped to keep a type within maxPoints
}

func newDeviceWindows(span time.Duration, maxPoints int) *deviceWindows {
	return &deviceWindows{byType: map[string][]point{}, span: span, maxPoints: maxPoints}
}

// add inserts a reading in time order (a late one in its place) and drops
// what fell out of the span. It reports false for a reading older than the
// span before the newest, which no window can hold.
func (w *deviceWindows) add(typ string, t time.Time, v float64) bool {
	if t.After(w.newest) {
		w.newest = t
	}
	cut := w.newest.Add(-w.span)
	if !t.After(cut) {
		return false
	}
	ps := w.byType[typ]
	i := sort.Search(len(ps), func(k int) bool { return ps[k].t.After(t) })
	ps = append(ps, point{})
	copy(ps[i+1:], ps[i:])
	ps[i] = point{t, v}
	w.byType[typ] = ps
	for typ2, qs := range w.byType { // drop the expired of every type
		k := sort.Search(len(qs), func(k int) bool { return qs[k].t.After(cut) })
		if len(qs)-k > w.maxPoints {
			w.dropped += uint64(len(qs) - k - w.maxPoints)
			k = len(qs) - w.maxPoints
		}
		if k == len(qs) {
			delete(w.byType, typ2)
		} else {
			w.byType[typ2] = qs[k:]
		}
	}
	return true
}

// matches says whether a reading's content type is of the type a rule
// names: the same ("temperature/celsius"), or its first part
// ("temperature" matches "temperature/celsius"); "" matches every type.
func matches(want, typ string) bool {
	return want == "" || typ == want || strings.HasPrefix(typ, want+"/")
}

// each calls fn with the value of every reading of typ dated in (from, to].
func (w *deviceWindows) each(typ string, from, to time.Time, fn func(float64)) {
	for t, ps := range w.byType {
		if !matches(typ, t) {
			continue
		}
		i := sort.Search(len(ps), func(k int) bool { return ps[k].t.After(from) })
		for ; i < len(ps) && !ps[i].t.After(to); i++ {
			fn(ps[i].v)
		}
	}
}

// last is the value of the latest reading of typ dated at or before at.
func (w *deviceWindows) last(typ string, at time.Time) (float64, bool) {
	var best point
	found := false
	for t, ps := range w.byType {
		if !matches(typ, t) {
			continue
		}
		i := sort.Search(len(ps), func(k int) bool { return ps[k].t.After(at) }) - 1
		if i >= 0 && (!found || ps[i].t.After(best.t)) {
			best, found = ps[i], true
		}
	}
	return best.v, found
}
