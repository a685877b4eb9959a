package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// queryOrg is a fresh organisation with two sensors and readings at known
// times in one minute of the last hour: a (10, 20, 30) and b (100, 200).
type queryOrg struct {
	id          string
	admin, a, b *identity.Key
	minute      time.Time
}

func newQueryOrg(t *testing.T) *queryOrg {
	t.Helper()
	o := &queryOrg{id: fmt.Sprintf("query-%d", time.Now().UnixNano()), admin: testutil.Key(t, identity.Ed25519)}
	send(t, o.admin, &record.OrgCreate{ID: o.id})
	reg := func() *identity.Key {
		dev := testutil.Key(t, identity.Ed25519)
		proof, err := dev.Sign(record.PossessionMessage(shared.d.ChainID(), o.id, dev.ID()))
		if err != nil {
			t.Fatal(err)
		}
		send(t, o.admin, &record.DeviceRegister{Org: o.id, Device: dev.ID(), Class: "sensor", Firmware: "1.0.0", Proof: proof})
		return dev
	}
	o.a, o.b = reg(), reg()
	o.minute = time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	postAt(t, o.a, 1, o.minute.Add(5*time.Second), 10*time.Second, 10, 20, 30)
	postAt(t, o.b, 1, o.minute.Add(5*time.Second), 10*time.Second, 100, 200)
	o.waitCount(t, "org="+o.id, 5)
	return o
}

// waitSeries waits until the range box sel has drawn the answer to a query.
func waitSeries(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	if err := poll(ctx, fmt.Sprintf(`document.querySelector(%s)?.dataset.state === 'done'`, jsString(sel)), 20*time.Second); err != nil {
		t.Fatalf("%s not drawn: %v", sel, err)
	}
}

// choose sets a select of the range form and lets the page see the change.
func choose(t *testing.T, ctx context.Context, sel, value string) {
	t.Helper()
	get(t, ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const s = document.querySelector(%s); s.value = %s; s.dispatchEvent(new Event('change', { bubbles: true })); return true; })()`, jsString(sel), jsString(value))))
}

// cell is the text of the cell sel in the element of selector row.
func cell(t *testing.T, ctx context.Context, row, sel string) string {
	t.Helper()
	return get(t, ctx, chromedp.Evaluate[string](fmt.Sprintf(`(() => { const r = document.querySelector(%s); const c = r && r.querySelector(%s); return c ? c.textContent : '(none)'; })()`, jsString(row), jsString(sel))))
}

// TestDeviceRange: readings posted at known times show on the device page
// in their minute bucket with the right count and mean; the range
// selector changes the query the page makes; an anonymous viewer sees no
// values.
func TestDeviceRange(t *testing.T) {
	ctx := tab(t)
	o := newQueryOrg(t)
	frag := "/device/" + o.a.ID()
	// Anonymous: the query is refused, no value drawn.
	show(t, ctx, explorer(frag), frag)
	waitSeries(t, ctx, "#series-box")
	if private := textOf(t, ctx, `#series-box`); !strings.Contains(private, "Readings are private") || count(t, ctx, `#series-box svg.series`) != 0 || count(t, ctx, `#series-box td.mean`) != 0 {
		t.Fatalf("anonymous range view: %q; want the readings private and no chart", private)
	}
	signIn(t, ctx, o.admin)
	show(t, ctx, explorer(frag), frag)
	choose(t, ctx, `#range-span`, "hour")
	choose(t, ctx, `#range-bucket`, "auto")
	waitSeries(t, ctx, "#series-box")
	// Auto for an hour: raw readings, three points.
	if q := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#series-box').dataset.query`)); !strings.Contains(q, "bucket=raw") {
		t.Errorf("last hour, auto: query %q; want raw readings", q)
	}
	if n := count(t, ctx, `#series-chart-0 circle`); n != 3 {
		t.Errorf("raw readings of the last hour: %d points; want 3", n)
	}
	// One-minute buckets: the minute of the readings, count 3, mean 20.
	choose(t, ctx, `#range-bucket`, "1m")
	if err := poll(ctx, `document.querySelector('#series-box').dataset.query.includes('bucket=1m') && document.querySelector('#series-box').dataset.state === 'done'`, 20*time.Second); err != nil {
		t.Fatalf("1m buckets not drawn: %v (errors %q, box %q)", err, get(t, ctx, chromedp.Evaluate[[]string](`window.__errors`)), textOf(t, ctx, "#series-box"))
	}
	row := fmt.Sprintf(`#series-box section[data-type="temperature/celsius"] tr[data-start="%s"]`, o.minute.Format("2006-01-02T15:04:05.000Z"))
	if c, m, lo, hi := cell(t, ctx, row, ".count"), cell(t, ctx, row, ".mean"), cell(t, ctx, row, ".min"), cell(t, ctx, row, ".max"); c != "3" || m != "20" || lo != "10" || hi != "30" {
		t.Errorf("minute %s: count %q mean %q min %q max %q; want 3, 20, 10, 30", o.minute, c, m, lo, hi)
	}
	var series []struct {
		Count int
		Mean  float64
	}
	js := `JSON.parse(document.querySelector('#series-chart-0').dataset.series)`
	if err := json.Unmarshal([]byte(get(t, ctx, chromedp.Evaluate[string](`JSON.stringify(`+js+`)`))), &series); err != nil || len(series) != 1 || series[0].Count != 3 || series[0].Mean != 20 {
		t.Errorf("chart data %+v (%v); want one bucket of 3 with mean 20", series, err)
	}
	if n := count(t, ctx, `#series-chart-0 polygon.band`); n != 1 {
		t.Errorf("buckets drawn without their min–max band")
	}
	// A week: the query's range is a week long, and still finds the readings.
	choose(t, ctx, `#range-span`, "week")
	if err := poll(ctx, `(() => { const p = new URLSearchParams(document.querySelector('#series-box').dataset.query); return p.get('to') - p.get('from') === 7 * 86400000 && document.querySelector('#series-box').dataset.state === 'done'; })()`, 20*time.Second); err != nil {
		t.Fatalf("the week was not asked for: %v (query %q)", err, get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#series-box').dataset.query`)))
	}
	if rng := textOf(t, ctx, `#series-range`); !strings.Contains(rng, "1m buckets") {
		t.Errorf("range shown: %q", rng)
	}
	if c := cell(t, ctx, `#series-box section[data-type="temperature/celsius"] .series-summary`, ".count"); c != "3" {
		t.Errorf("last week: %q values; want 3", c)
	}
	// Auto over a week: hours.
	choose(t, ctx, `#range-bucket`, "auto")
	if err := poll(ctx, `document.querySelector('#series-box').dataset.query.includes('bucket=1h') && document.querySelector('#series-box').dataset.state === 'done'`, 20*time.Second); err != nil {
		t.Fatalf("auto over a week did not ask for hours: %v", err)
	}
	// By receive time: the three readings were received in the last hour.
	choose(t, ctx, `#range-span`, "hour")
	choose(t, ctx, `#range-axis`, "received")
	if err := poll(ctx, `document.querySelector('#series-box').dataset.query.includes('time=received') && document.querySelector('#series-box').dataset.state === 'done'`, 20*time.Second); err != nil {
		t.Fatalf("receive time not asked for: %v", err)
	}
	if n := count(t, ctx, `#series-chart-0 circle`); n != 3 {
		t.Errorf("raw readings received in the last hour: %d points; want 3", n)
	}
	choose(t, ctx, `#range-axis`, "device") // the choice lasts while the tab is open
	noScriptErrors(t, ctx)
	screenshot(t, ctx, "device-range")
}

// TestOrgAggregates: the organisation page adds up its devices' buckets;
// a caller who may read only one device sees that one and a withheld
// count; an anonymous viewer sees no values.
func TestOrgAggregates(t *testing.T) {
	ctx := tab(t)
	o := newQueryOrg(t)
	frag := "/org/" + o.id
	row := `#org-aggregates tr[data-type="temperature/celsius"]`
	for _, tc := range []struct {
		name                      string
		who                       *identity.Key
		count, mean, min, max, wh string
	}{
		{"admin", o.admin, "5", "72", "10", "200", "0"},
		{"device a", o.a, "3", "20", "10", "30", "1"},
	} {
		signIn(t, ctx, tc.who)
		show(t, ctx, explorer(frag), frag)
		choose(t, ctx, `#range-span`, "day")
		waitSeries(t, ctx, "#org-series-box")
		if err := poll(ctx, `document.querySelector('#org-series-box').dataset.query.includes('bucket=1h') && document.querySelector('#org-series-box').dataset.state === 'done'`, 20*time.Second); err != nil {
			t.Fatalf("%s: a day in hours not asked for: %v", tc.name, err)
		}
		got := []string{cell(t, ctx, row, ".count"), cell(t, ctx, row, ".mean"), cell(t, ctx, row, ".min"), cell(t, ctx, row, ".max"), textOf(t, ctx, "#org-withheld")}
		if want := []string{tc.count, tc.mean, tc.min, tc.max, tc.wh}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: count, mean, min, max, withheld = %q; want %q", tc.name, got, want)
		}
		if n := count(t, ctx, `#org-chart-0 polyline.line`); n != 1 {
			t.Errorf("%s: no chart of the aggregate", tc.name)
		}
		screenshot(t, ctx, "org-aggregates-"+strings.ReplaceAll(tc.name, " ", "-"))
	}
	// Anonymous: both devices withheld, no value.
	get(t, ctx, chromedp.Evaluate[bool](`sessionStorage.clear(), true`))
	show(t, ctx, explorer("/orgs"), "/orgs")
	show(t, ctx, explorer(frag), frag)
	waitSeries(t, ctx, "#org-series-box")
	if wh, n := textOf(t, ctx, "#org-withheld"), count(t, ctx, `#org-aggregates td.mean`); wh != "2" || n != 0 {
		t.Errorf("anonymous: withheld %q, %d mean cells; want 2 and none", wh, n)
	}
	noScriptErrors(t, ctx)
}

// postAt posts readings of dev, in one envelope, with seqs from seq on,
// the first at time at and the next every step.
func postAt(t *testing.T, dev *identity.Key, seq uint64, at time.Time, step time.Duration, values ...float64) {
	t.Helper()
	rs := make([]reading.Reading, len(values))
	for i := range values {
		rs[i] = reading.Reading{Seq: seq + uint64(i), Time: at.Add(time.Duration(i) * step), ContentType: "temperature/celsius", Value: &values[i]}
	}
	post(t, dev, rs...)
}

// waitCount waits until the admin's raw query over scope in the last hour
// finds want readings: acknowledged readings are indexed (and rolled up)
// shortly after.
func (o *queryOrg) waitCount(t *testing.T, scope string, want int) {
	t.Helper()
	ctx := testutil.Context(t, 30*time.Second)
	tok, err := identity.NewCWT(o.admin, o.admin.ID(), shared.d.ChainID(), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	from := strconv.FormatInt(time.Now().Add(-time.Hour).UnixMilli(), 10)
	testutil.WaitFor(t, ctx, fmt.Sprintf("%d readings of %s indexed", want, scope), func() bool {
		req, _ := http.NewRequestWithContext(ctx, "GET", shared.url+"/v1/readings/query?"+scope+"&limit=10000&from="+from, nil)
		req.Header.Set("Authorization", "Bearer "+identity.EncodeCWTPassword(tok))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var a struct{ Items []json.RawMessage }
		return json.NewDecoder(res.Body).Decode(&a) == nil && len(a.Items) == want
	})
}

// TestDeviceRangePages: raw readings are read page by page with the
// cursor, and the page stops after 20 pages, saying so.
func TestDeviceRangePages(t *testing.T) {
	ctx := tab(t)
	o := newQueryOrg(t)
	values := make([]float64, 22)
	for i := range values {
		values[i] = float64(i)
	}
	postAt(t, o.b, 3, o.minute.Add(30*time.Second), 100*time.Millisecond, values...)
	o.waitCount(t, "device="+url.QueryEscape(o.b.ID()), 24)
	signIn(t, ctx, o.admin)
	frag := "/device/" + o.b.ID()
	for _, tc := range []struct {
		limit, points int
		truncated     bool
	}{{2, 24, false}, {1, 20, true}} {
		show(t, ctx, fmt.Sprintf("%s/explorer/?query-limit=%d#%s", shared.url, tc.limit, frag), frag)
		choose(t, ctx, `#range-span`, "hour")
		choose(t, ctx, `#range-bucket`, "raw")
		if err := poll(ctx, `document.querySelector('#series-box').dataset.query.includes('bucket=raw') && document.querySelector('#series-box').dataset.state === 'done'`, 20*time.Second); err != nil {
			t.Fatalf("raw readings not drawn: %v", err)
		}
		n, truncated := count(t, ctx, `#series-chart-0 circle`), count(t, ctx, `#series-truncated`) == 1
		if n != tc.points || truncated != tc.truncated {
			t.Errorf("pages of %d: %d points, truncated %v; want %d, %v", tc.limit, n, truncated, tc.points, tc.truncated)
		}
	}
	if text := textOf(t, ctx, `#series-truncated`); !strings.Contains(text, "Stopped after 20 pages") {
		t.Errorf("truncation note: %q", text)
	}
	noScriptErrors(t, ctx)
}
