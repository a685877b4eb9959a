package web_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/record"
)

// TestNetworkPage opens the network page on the shared devnet, which is
// open and unlimited with no upgrade planned: the page proves the absence
// of a governance record against the validators' signed header, shows the
// rules that follows from it and the application version the node
// reports, and counts blocks live.
func TestNetworkPage(t *testing.T) {
	ctx := tab(t)
	c := client.New(shared.url)
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var gov struct{ Record record.Governance }
	var up api.Upgrades
	if err := c.Get(rctx, "/v1/governance", &gov); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(rctx, "/v1/upgrade", &up); err != nil {
		t.Fatal(err)
	}
	if gov.Record.OrgCreation != record.OrgCreationOpen || up.Pending != nil || len(up.Done) != 0 {
		t.Fatalf("the devnet is not open with no upgrade: %+v, %+v", gov.Record, up)
	}

	show(t, ctx, explorer("/network"), "/network")
	if v := textOf(t, ctx, `#gov-verdict.ok`); !strings.Contains(v, "proved") {
		t.Fatalf("verdict %q; steps:\n%s", v, textOf(t, ctx, `#gov-steps`))
	}
	if steps := textOf(t, ctx, `#gov-steps`); count(t, ctx, `#gov-steps li.ok`) != 4 || !strings.Contains(steps, "no governance record") || !strings.Contains(steps, "open and unlimited") {
		t.Fatalf("steps: %d ok of %d:\n%s", count(t, ctx, `#gov-steps li.ok`), count(t, ctx, `#gov-steps li`), steps)
	}
	if got := textOf(t, ctx, `#gov-creation`); !strings.HasPrefix(got, "open") {
		t.Errorf("organisation creation: %q", got)
	}
	budgets := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#gov-budgets tbody tr')].map(r => r.dataset.field + '=' + r.querySelector('.budget').textContent)`))
	if want := []string{"mempool_txs_per_org=unlimited", "block_txs_per_org=unlimited", "block_triggers_per_org=unlimited"}; fmt.Sprint(budgets) != fmt.Sprint(want) {
		t.Errorf("budgets %q, want %q", budgets, want)
	}
	// Unlimited: CheckTx never refused a tx over budget.
	if got := textOf(t, ctx, `#gov-over-budget`); got != "0" {
		t.Errorf("over budget: %q", got)
	}
	if got := textOf(t, ctx, `#up-version`); got != strconv.FormatUint(up.AppVersion, 10) {
		t.Errorf("application version %q, the API says %d", got, up.AppVersion)
	}
	if got := textOf(t, ctx, `#up-pending`); got != "No upgrade is planned." {
		t.Errorf("pending: %q", got)
	}
	if got := textOf(t, ctx, `#up-done tbody`); got != "none" {
		t.Errorf("done: %q", got)
	}
	// The live height moves without a reload.
	get(t, ctx, chromedp.Evaluate[string](`window.__marker = 'no reload'`))
	h0, _ := strconv.Atoi(textOf(t, ctx, `#up-height`))
	if err := poll(ctx, fmt.Sprintf(`+document.querySelector('#up-height').textContent > %d && window.__marker === 'no reload'`, h0), 15*time.Second); err != nil {
		t.Fatalf("the height stayed at %d: %v", h0, err)
	}
	noScriptErrors(t, ctx)
	screenshot(t, ctx, "network")
}

// TestNetworkPageRefusesAlteredHeader: a node that alters the header's app
// hash (?tamper=header) gets the governance proof refused.
func TestNetworkPageRefusesAlteredHeader(t *testing.T) {
	ctx := tab(t)
	show(t, ctx, shared.url+"/explorer/?tamper=header#/network", "/network")
	if v := textOf(t, ctx, `#gov-verdict.bad`); !strings.Contains(v, "NOT verified") {
		t.Fatalf("verdict %q", v)
	}
	if bad := textOf(t, ctx, `#gov-steps li.bad`); !strings.HasPrefix(bad, "header") {
		t.Fatalf("failed step %q; steps:\n%s", bad, textOf(t, ctx, `#gov-steps`))
	}
}

// TestNetworkRendering checks the page's renderers on their own: a plan's
// countdown from the live height, done upgrades, budgets and a deposit;
// and the page's proof-of-absence checker refuses keys the proof does not
// show absent, and altered proofs.
func TestNetworkRendering(t *testing.T) {
	ctx := tab(t)
	show(t, ctx, explorer("/api"), "/api")
	js := fmt.Sprintf(`(async () => {
		const app = await import('./app.js');
		const v = await import('./verify.js');
		const div = (html) => { const d = document.createElement('div'); d.innerHTML = html; return d; };
		const out = [];
		const plan = { app_version: 1, done: [{ name: 'v1b', height: 40, app_version: 1 }], pending: { name: 'v2', height: 120, app_version: 2, info: 'thingnet 2.0', seq: 3, planned: 90 } };
		for (const [h, want] of [[100, '20 blocks'], [119, 'the next block'], [120, 'due: nodes without the release stop here']]) {
			const d = div(app.upgradeHTML(plan, h));
			const got = d.querySelector('#up-countdown').textContent;
			if (got !== want) out.push('at ' + h + ': countdown ' + JSON.stringify(got) + ', want ' + JSON.stringify(want));
		}
		const d = div(app.upgradeHTML(plan, 100));
		if (!d.querySelector('#up-pending').textContent.includes('1 → 2')) out.push('pending: ' + d.querySelector('#up-pending').textContent);
		if (d.querySelector('#up-done tbody').textContent.replace(/\s+/g, ' ').trim() !== 'v1b401') out.push('done: ' + d.querySelector('#up-done tbody').textContent);
		const none = div(app.upgradeHTML({ app_version: 2, done: [], pending: null }, 7));
		if (none.querySelector('#up-pending').textContent !== 'No upgrade is planned.' || none.querySelector('#up-countdown')) out.push('no plan: ' + none.innerHTML);
		const g = div(app.governanceHTML({ org_creation: 'deposit', org_deposit: 50, block_txs_per_org: 10 }));
		if (!g.querySelector('#gov-creation').textContent.startsWith('deposit: 50 credits')) out.push('creation: ' + g.querySelector('#gov-creation').textContent);
		const budgets = [...g.querySelectorAll('#gov-budgets .budget')].map((x) => x.textContent).join(',');
		if (budgets !== 'unlimited,10,unlimited') out.push('budgets: ' + budgets);

		const res = await (await fetch('/v1/governance?prove=true')).json();
		const p = res.proof, proof = v.b64(p.proof), utf8 = (s) => new TextEncoder().encode(s);
		if (!v.eq(await v.ics23AbsentRoot(proof, v.b64(p.key)), v.b64(p.root))) out.push('the genuine proof gives another root');
		// Keys in the state, either side of m/governance, and keys beyond
		// every neighbour: none is shown absent by this proof.
		for (const k of [utf8(%s), utf8(%s), Uint8Array.of(0), Uint8Array.of(0xff, 0xff)]) {
			try { await v.ics23AbsentRoot(proof, k); out.push('key ' + new TextDecoder().decode(k) + ' passed'); } catch (e) { /* refused */ }
		}
		for (let i = 0; i < proof.length; i += 3) {
			const b = proof.slice();
			b[i] ^= 0x01;
			try { if (v.eq(await v.ics23AbsentRoot(b, v.b64(p.key)), v.b64(p.root))) out.push('altered byte ' + i + ' passed'); } catch (e) { /* refused */ }
		}
		return out;
	})()`, jsString(string(record.DeviceKey(shared.dev.ID()))), jsString(string(record.OrgKey(devnet.DemoOrg))))
	bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("the network page's renderers or checker:\n%s", strings.Join(bad, "\n"))
	}
}
