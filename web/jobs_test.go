package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// TestJobsAndConfigPages: an organisation with three sensors and a job
// for all of them in one wave — one succeeded, one failed with a reason,
// one pending. The jobs list shows the job; its page shows the counts GET
// /v1/jobs/{org}/{id} gives and the failure's reason; the org and fleet
// pages link to the list. A class configuration and a device one, and a
// report from the device that differs in one setting: not signed in, the
// device page shows the desired layers and settings and no reported
// value; signed in as the admin, desired against reported per setting.
func TestJobsAndConfigPages(t *testing.T) {
	ctx := tab(t)
	org, admin := newOrg(t, "jobs")
	devs := []*identity.Key{registerIn(t, admin, org, "sensor", nil), registerIn(t, admin, org, "sensor", nil), registerIn(t, admin, org, "sensor", nil)}
	send(t, admin, &record.JobCreate{Org: org, Command: "ping", Args: map[string]any{"n": int64(3)}, Target: record.JobTarget{Class: "sensor"},
		Waves: 1, BlocksPerWave: 1, MaxFailures: 3, TimeoutBlocks: 10000})
	send(t, devs[0], &record.JobReport{Org: org, ID: 1, Outcome: record.JobSucceeded})
	send(t, devs[1], &record.JobReport{Org: org, ID: 1, Outcome: record.JobFailed, Reason: "sensor bus busy"})
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := client.New(shared.url).Job(rctx, org, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Counts.Succeeded != 1 || p.Counts.Failed != 1 || p.Counts.Pending != 1 {
		t.Fatalf("GET /v1/jobs/%s/1 counts %+v; want 1 succeeded, 1 failed, 1 pending", org, p.Counts)
	}

	show(t, ctx, explorer("/jobs/"+org), "/jobs/"+org)
	row := `#jobs tr[data-id="1"]`
	if st, cmd, f := cell(t, ctx, row, ".state"), cell(t, ctx, row, "td:nth-child(2)"), cell(t, ctx, row, ".failed"); st != "active" || !strings.Contains(cmd, "ping") || f != "1" {
		t.Errorf("jobs list: state %q command %q failed %q; want active, ping, 1", st, cmd, f)
	}
	if w := cell(t, ctx, row, ".wave"); w != "1 / 1" {
		t.Errorf("jobs list: wave %q; want 1 / 1", w)
	}
	show(t, ctx, explorer("/jobs/"+org+"/1"), "/jobs/"+org+"/1")
	want := map[string]int{"targeted": p.Counts.Targeted, "succeeded": p.Counts.Succeeded, "failed": p.Counts.Failed, "rejected": p.Counts.Rejected,
		"pending": p.Counts.Pending, "timed_out": p.Counts.TimedOut, "skipped": p.Counts.Skipped}
	for k, n := range want {
		if got := cell(t, ctx, `#job-counts tr[data-wave="total"]`, fmt.Sprintf(`[data-count="%s"]`, k)); got != strconv.Itoa(n) {
			t.Errorf("job page total %s: %q; want %d", k, got, n)
		}
		if got := cell(t, ctx, `#job-counts tr[data-wave="1"]`, fmt.Sprintf(`[data-count="%s"]`, k)); got != strconv.Itoa(n) {
			t.Errorf("job page wave 1 %s: %q; want %d", k, got, n)
		}
	}
	if r := cell(t, ctx, fmt.Sprintf(`#job-outcomes tr[data-device="%s"]`, devs[1].ID()), ".reason"); r != "sensor bus busy" {
		t.Errorf("failed outcome's reason: %q", r)
	}
	if !strings.Contains(textOf(t, ctx, "pre.cli"), "thingnet job cancel "+org+"/1") {
		t.Errorf("no cancel command: %q", textOf(t, ctx, "pre.cli"))
	}
	for _, l := range [][2]string{{"/org/" + org, "#org-jobs"}, {"/fleet/" + org, "#fleet-jobs"}} {
		show(t, ctx, explorer(l[0]), l[0])
		if href := get(t, ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector('%s').getAttribute('href')`, l[1]))); href != "#/jobs/"+org {
			t.Errorf("%s links to %q; want #/jobs/%s", l[0], href, org)
		}
	}

	// Configuration: the class's, then the device's (which wins), and a report.
	dev := devs[0]
	send(t, admin, &record.ConfigSet{Org: org, Scope: record.ConfigClass, Name: "sensor", Version: 1, Settings: map[string]any{"wake_s": int64(30), "mode": "eco"}})
	send(t, admin, &record.ConfigSet{Org: org, Scope: record.ConfigDevice, Name: dev.ID(), Version: 1, Settings: map[string]any{"wake_s": int64(5)}})
	rep, err := record.Marshal(&record.ConfigReport{Height: 1, Applied: map[string]any{"wake_s": int64(30), "mode": "eco"},
		Layers: []record.ConfigLayer{{Scope: record.ConfigClass, Name: "sensor", Version: 1, Height: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	post(t, dev, reading.Reading{Seq: 1, Time: time.Now(), ContentType: record.ContentConfigReported, Bytes: rep})

	frag := "/device/" + dev.ID()
	show(t, ctx, explorer(frag), frag)
	if n := count(t, ctx, "#config-layers tbody tr[data-scope]"); n != 2 {
		t.Errorf("public: %d layers; want class and device", n)
	}
	if d := cell(t, ctx, `#config-settings tr[data-setting="wake_s"]`, ".desired"); d != "5" {
		t.Errorf("public: desired wake_s %q; want 5 (the device's layer wins)", d)
	}
	if count(t, ctx, "#config-private") != 1 || count(t, ctx, "#config-settings .reported") != 0 || count(t, ctx, "#config-reported") != 0 {
		t.Fatalf("not signed in, the page shows the reported side:\n%s", textOf(t, ctx, "#config-box"))
	}

	signIn(t, ctx, admin)
	show(t, ctx, explorer(frag), frag)
	diff := func(s string) string {
		return get(t, ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector('#config-settings tr[data-setting="%s"]') || {dataset: {}}).dataset.diff || ''`, s)))
	}
	if w, m := diff("wake_s"), diff("mode"); w != "differs" || m != "in sync" {
		t.Errorf("signed in: wake_s %q, mode %q; want differs, in sync\n%s", w, m, textOf(t, ctx, "#config-box"))
	}
	if r := cell(t, ctx, `#config-settings tr[data-setting="wake_s"]`, ".reported"); r != "30" {
		t.Errorf("reported wake_s %q; want 30", r)
	}
	noScriptErrors(t, ctx)
}

// TestConfigReportDecoder feeds the page's decoder of reported
// configurations (bytes a device signs, so anyone's) a genuine report, a
// hostile one and a seeded set of mutations, as a fuzz target would: each
// decodes with fields of their types or is refused (null) — never an
// exception — and the section renders a hostile report as text.
func TestConfigReportDecoder(t *testing.T) {
	ctx := tab(t)
	genuine, err := record.Marshal(&record.ConfigReport{Height: 7, Applied: map[string]any{"wake_s": int64(30), "mode": "eco", "on": true},
		Layers:  []record.ConfigLayer{{Scope: record.ConfigClass, Name: "sensor", Version: 2, Height: 6}},
		Refused: []record.ConfigRefusal{{Setting: "x", Reason: "unknown setting"}}})
	if err != nil {
		t.Fatal(err)
	}
	const xss = `<img src=x onerror="window.__pwned=1">`
	hostile, err := record.Marshal(map[int]any{1: 1, 2: []any{map[int]any{1: "class", 2: xss, 3: 1, 4: 1}},
		3: map[string]any{"__proto__": xss, "toString": xss, "mode": []any{xss, map[string]any{"a": xss}}}, 4: []any{map[int]any{3: xss, 5: xss}}})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(21, 7))
	inputs := [][]byte{genuine, hostile, {}, {0xa0}, {0xa1, 0x03, 0x05}, {0xa1, 0x02, 0xa0}, {0xa1, 0x04, 0x81, 0x01}}
	for range 300 {
		b := append([]byte(nil), genuine...)
		switch rng.IntN(3) {
		case 0:
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		case 1:
			b = b[:rng.IntN(len(b))]
		case 2:
			b[rng.IntN(len(b))] = byte(rng.UintN(256))
			b[rng.IntN(len(b))] = byte(rng.UintN(256))
		}
		inputs = append(inputs, b)
	}
	in, err := json.Marshal(inputs)
	if err != nil {
		t.Fatal(err)
	}
	show(t, ctx, explorer("/api"), "/api")
	js := fmt.Sprintf(`(async () => {
		const app = await import('./app.js');
		const out = [];
		const typed = (r) => typeof r.height === 'number' && Array.isArray(r.layers) && Array.isArray(r.refused) && Object.getPrototypeOf(r.applied) === null
			&& r.layers.every((l) => typeof l.scope === 'string' && typeof l.name === 'string' && typeof l.version === 'number')
			&& r.refused.every((x) => typeof x.reason === 'string');
		const want = { height: 9, layers: [], settings: { wake_s: 30, mode: 'eco' } };
		for (const [i, b] of %s.entries()) {
			const item = { index: i, time: new Date().toISOString(), content_type: 'thingnet/config-reported', bytes: b };
			try {
				const r = app.configReport(item);
				if (i < 2 && !r) out.push('report ' + i + ' refused');
				if (r && !typed(r)) out.push('report ' + i + ' decoded with fields of other types: ' + JSON.stringify(r));
				const d = document.createElement('div');
				d.innerHTML = app.configSection(want, [item]);
				if (d.querySelector('img')) out.push('report ' + i + ' rendered markup');
				if (i === 0 && d.querySelector('tr[data-setting="wake_s"]').dataset.diff !== 'in sync') out.push('genuine wake_s: ' + d.querySelector('tr[data-setting="wake_s"]').dataset.diff);
				if (i === 1 && d.querySelector('tr[data-setting="toString"]').dataset.diff !== 'not desired') out.push('hostile toString: ' + d.querySelector('#config-settings').innerText);
			} catch (e) { out.push('report ' + i + ': ' + e); }
		}
		if (window.__pwned) out.push('a report ran script');
		return out;
	})()`, in)
	problems(t, ctx, "the configuration report decoder", js)
	noScriptErrors(t, ctx)
}
