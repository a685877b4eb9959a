package web_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// env is the devnet and the browser every test in this package shares:
// starting them takes most of the time.
type env struct {
	d       *devnet.Devnet
	url     string // node 0's API
	admin   *identity.Key
	dev     *identity.Key // a sensor with readings 0..readings-1 in node 0's log
	grant   uint64
	tx      string // hash of a committed tx
	browser context.Context
	err     error
}

const readings = 5

var shared env

func TestMain(m *testing.M) {
	code := func() int {
		home, err := os.MkdirTemp("", "thingnet-web-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(home)
		stop := setup(home)
		defer stop()
		return m.Run()
	}()
	os.Exit(code)
}

// setup starts a one-validator devnet with a device and its readings, and
// a headless Chromium when one is installed; failures are reported by the
// tests that need what failed.
func setup(home string) (stop func()) {
	stops := []func(){}
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	fail := func(err error) func() { shared.err = err; return stop }
	base, err := chain.FreePortBase(1)
	if err != nil {
		return fail(err)
	}
	lvl := slog.LevelWarn
	// The node keeps 10 past versions of its state: the explorer's
	// verifier must not depend on pruned ones (TestVerifyReading).
	d, err := devnet.Start(devnet.Config{Home: home, Validators: 1, BasePort: base, FastBlocks: true, NoSync: true, KeepVersions: 10,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))})
	if err != nil {
		return fail(err)
	}
	stops = append(stops, func() { d.Stop() })
	shared.d, shared.url = d, d.APIURL(0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The API answers no_state until the first block is committed.
	if err := d.WaitForHeight(ctx, 1); err != nil {
		return fail(fmt.Errorf("the devnet committed no block: %w", err))
	}
	if shared.admin, err = devnet.Keystore(home).Load(devnet.DemoAdminKey, nil); err != nil {
		return fail(err)
	}
	if shared.dev, err = registerDevice(ctx); err != nil {
		return fail(err)
	}
	c := client.New(shared.url)
	g := &record.GrantAdd{Grantor: "device:" + shared.dev.ID(), Subject: "org:" + devnet.DemoOrg, Action: "read", Resource: "device:" + shared.dev.ID() + "/readings"}
	res, err := c.Send(ctx, shared.dev, "", g, true)
	if err != nil {
		return fail(fmt.Errorf("grant: %w", err))
	}
	shared.tx = res.Hash
	var gs struct{ Items []record.Grant }
	if err := c.Get(ctx, "/v1/grants", &gs); err != nil || len(gs.Items) == 0 {
		return fail(fmt.Errorf("grants: %v", err))
	}
	shared.grant = gs.Items[0].ID
	now := time.Now().Add(-time.Duration(readings) * time.Second)
	for i := range readings {
		v := 20 + float64(i*i)/4
		raw, err := reading.Sign(shared.dev, shared.dev.ID(), reading.Reading{Seq: uint64(i + 1), Time: now.Add(time.Duration(i) * time.Second), ContentType: "temperature/celsius", Value: &v})
		if err != nil {
			return fail(err)
		}
		res, err := http.Post(shared.url+"/v1/readings", "application/cose", bytes.NewReader(raw))
		if err != nil {
			return fail(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			return fail(fmt.Errorf("POST /v1/readings: %s", res.Status))
		}
	}
	// Wait until the last reading is anchored (the gateway anchors every second).
	if _, err := c.WaitReadingProof(ctx, readings-1, 100*time.Millisecond); err != nil {
		return fail(fmt.Errorf("reading %d not anchored in time: %w", readings-1, err))
	}
	// The browser, if there is one.
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		return stop
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000), chromedp.Flag("disable-dev-shm-usage", true))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	stops = append(stops, acancel, bcancel)
	if err := chromedp.Do(bctx); err != nil {
		return fail(fmt.Errorf("starting %s: %w", path, err))
	}
	shared.browser = bctx
	return stop
}

func registerDevice(ctx context.Context) (*identity.Key, error) {
	dev, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		return nil, err
	}
	proof, err := dev.Sign(record.PossessionMessage(shared.d.ChainID(), devnet.DemoOrg, dev.ID()))
	if err != nil {
		return nil, err
	}
	_, err = client.New(shared.url).Send(ctx, shared.admin, "", &record.DeviceRegister{Org: devnet.DemoOrg, Device: dev.ID(), Class: "sensor", Firmware: "1.0.0", Proof: proof}, true)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	return dev, nil
}

func need(t *testing.T) {
	t.Helper()
	if shared.err != nil {
		t.Fatalf("setup: %v", shared.err)
	}
}

// tab opens a new browser tab for a test, with a deadline.
func tab(t *testing.T) context.Context {
	t.Helper()
	need(t)
	if shared.browser == nil {
		t.Skip("no Chromium found (chromium, chromium-browser or google-chrome on PATH): install Debian's chromium (scripts/test does) to run the browser tests")
	}
	ctx, cancel := chromedp.NewContext(shared.browser)
	t.Cleanup(cancel)
	ctx, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancel2)
	return ctx
}

// screenshot saves the page as a test artifact (go test -artifacts keeps
// them under -outputdir).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Error(err)
		return
	}
	t.Logf("screenshot: %s", path)
}

func explorer(frag string) string { return shared.url + "/explorer/#" + frag }

// get runs a value action and fails the test if it fails.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// poll waits until a JavaScript expression is true.
func poll(ctx context.Context, js string, timeout time.Duration) error {
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(timeout)))
	return err
}

// show opens an explorer URL and waits until the page for frag is on
// screen, complete (app.js sets #view's data-path then).
func show(t *testing.T, ctx context.Context, url, frag string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(url))
	js := fmt.Sprintf(`document.querySelector('#view').dataset.path === %s`, jsString(frag))
	if err := poll(ctx, js, 20*time.Second); err != nil {
		t.Fatalf("page %s not shown: %v", frag, err)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// textOf waits for an element and returns its text, in one step in the
// page (a live update may replace elements at any time).
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.innerText || ' ' : ''; })()`, jsString(sel))
	v, err := chromedp.Run(ctx, chromedp.Poll[string](js, chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		t.Fatalf("%s: %v", sel, err)
	}
	return v
}

// count is the number of elements matching sel.
func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	return get(t, ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel))))
}

func TestOverviewLoads(t *testing.T) {
	ctx := tab(t)
	show(t, ctx, shared.url+"/", "/") // / redirects to /explorer/
	height := textOf(t, ctx, `#ov-height`)
	validators := textOf(t, ctx, `#ov-validators`)
	rows, bars := count(t, ctx, `#blocks tbody tr`), count(t, ctx, `#tx-bars rect`)
	if h, err := strconv.Atoi(height); err != nil || h < 2 || validators != "1" || rows < 2 || bars < 2 {
		t.Fatalf("overview: height %q, validators %q, %d block rows, %d bars", height, validators, rows, bars)
	}
	screenshot(t, ctx, "overview")
}

// TestLiveUpdates keeps one page open: new blocks and a device's
// suspension appear without a reload.
func TestLiveUpdates(t *testing.T) {
	ctx := tab(t)
	show(t, ctx, explorer("/"), "/")
	if err := poll(ctx, `document.querySelector('#live.on') !== null`, 15*time.Second); err != nil {
		t.Fatalf("the event stream did not connect: %v", err)
	}
	get(t, ctx, chromedp.Evaluate[string](`window.__marker = 'no reload'`))
	h0, _ := strconv.Atoi(textOf(t, ctx, `#ov-height`))
	// A newer block arrives over the event stream.
	if err := poll(ctx, fmt.Sprintf(`+document.querySelector('#ov-height').textContent > %d && document.querySelector('#blocks tbody tr.new') !== null && window.__marker === 'no reload'`, h0), 15*time.Second); err != nil {
		t.Fatalf("no new block shown after height %d: %v", h0, err)
	}
	// A device registered and suspended now shows in the feed, and on the
	// devices page that is open.
	show(t, ctx, explorer("/devices"), "/devices")
	if window := get(t, ctx, chromedp.Evaluate[string](`window.__marker`)); window != "no reload" {
		t.Fatalf("going to another page reloaded the explorer")
	}
	rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dev, err := registerDevice(rctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(shared.url).Send(rctx, shared.admin, "", record.NewDeviceStatus(dev.ID(), record.StatusSuspended, "browser test"), true); err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf(`#devices tr[data-id="%s"] .badge.suspended`, dev.ID())
	js := fmt.Sprintf(`document.querySelector(%s) !== null && [...document.querySelectorAll('#feed li')].some(li => li.textContent.includes('suspended')) && window.__marker === 'no reload'`, jsString(row))
	if err := poll(ctx, js, 15*time.Second); err != nil {
		t.Fatalf("suspension not shown live: %v (feed: %q)", err, textOf(t, ctx, `#feed`))
	}
	noScriptErrors(t, ctx)
	screenshot(t, ctx, "live-devices")
}

// noScriptErrors fails the test if the page recorded script errors
// (app.js keeps them in window.__errors).
func noScriptErrors(t *testing.T, ctx context.Context) {
	t.Helper()
	if errs := get(t, ctx, chromedp.Evaluate[[]string](`window.__errors`)); len(errs) > 0 {
		t.Errorf("script errors in the page: %q", errs)
	}
}

// signIn signs the tab in as k, through the sign-in page, with a token
// as `thingnet token` makes it.
func signIn(t *testing.T, ctx context.Context, k *identity.Key) {
	t.Helper()
	tok, err := identity.NewCWT(k, k.ID(), shared.d.ChainID(), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	show(t, ctx, explorer("/signin"), "/signin")
	do(t, ctx, chromedp.SendKeys(`#signin-token`, identity.EncodeCWTPassword(tok)), chromedp.Click(`#signin-form button`))
	if err := poll(ctx, fmt.Sprintf(`document.querySelector('#who').textContent.startsWith('signed in as') && document.querySelector('#signin-state').textContent.includes(%s)`, jsString(k.ID())), 10*time.Second); err != nil {
		t.Fatalf("sign in: %v (%q)", err, textOf(t, ctx, `#signin-error`))
	}
}

func TestDevicePage(t *testing.T) {
	ctx := tab(t)
	frag := "/device/" + shared.dev.ID()
	// Anonymous: the public view, no values.
	show(t, ctx, explorer(frag), frag)
	if private := textOf(t, ctx, `#readings-private`); !strings.Contains(private, "Readings are private") || count(t, ctx, `#readings tbody tr`) != 0 || count(t, ctx, `#chart circle`) != 0 {
		t.Fatalf("anonymous device page: %q, %d rows; want the public view", private, count(t, ctx, `#readings tbody tr`))
	}
	// Signed in as another organisation's admin: still the public view.
	rival := testutil.Key(t, identity.Ed25519)
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	if _, err := client.New(shared.url).Send(rctx, rival, "", &record.OrgCreate{ID: fmt.Sprintf("rival-%d", time.Now().UnixNano())}, true); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, rival)
	show(t, ctx, explorer(frag), frag)
	if private := textOf(t, ctx, `#readings-private`); !strings.Contains(private, "may not read") || count(t, ctx, `#readings tbody tr`) != 0 {
		t.Fatalf("device page as another organisation's admin: %q, %d rows; want the public view", private, count(t, ctx, `#readings tbody tr`))
	}
	// Signed in as the organisation's admin: the readings.
	signIn(t, ctx, shared.admin)
	show(t, ctx, explorer(frag), frag)
	status := textOf(t, ctx, `#device-status`)
	history := textOf(t, ctx, `#history`)
	points, rows := count(t, ctx, `#chart circle`), count(t, ctx, `#readings tbody tr`)
	if status != "active" || !strings.Contains(history, "device.register") || points != readings || rows != readings {
		t.Fatalf("device page: status %q, history %q, %d chart points, %d rows; want active, device.register, %d, %d", status, history, points, rows, readings, readings)
	}
	// The button verifies in place.
	do(t, ctx, chromedp.Click(`#readings button.verify[data-index="2"]`))
	if verdict := textOf(t, ctx, `#verify-verdict`); !strings.Contains(verdict, "verified") || strings.Contains(verdict, "NOT") {
		t.Errorf("verify button: %q", verdict)
	}
	noScriptErrors(t, ctx)
	screenshot(t, ctx, "device")
}

// TestVerifyReading runs the proof in the page, for a genuine reading, for
// a copy with one payload byte changed (?tamper=1), and with a header a
// lying node altered (?tamper=header).
func TestVerifyReading(t *testing.T) {
	ctx := tab(t)
	// Only once the states of the reading's heights are pruned.
	wctx := testutil.Context(t, time.Minute)
	p, err := client.New(shared.url).WaitReadingProof(wctx, 1, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, wctx, fmt.Sprintf("the states of heights %d and %d pruned", p.AuthHeight, p.Anchor.Height), func() bool {
		_, errAuth := shared.d.App(0).View(p.AuthHeight)
		_, errAnchor := shared.d.App(0).View(p.Anchor.Height)
		return errAuth != nil && errAnchor != nil
	})
	// Anonymous: the public part verifies in the page, the value is not shown.
	show(t, ctx, explorer("/reading/1"), "/reading/1")
	if w := textOf(t, ctx, `#verify-withheld`); !strings.Contains(w, "not shown") {
		t.Errorf("anonymous reading page: %q; want the value withheld", w)
	}
	if verdict, steps := textOf(t, ctx, `#verify-verdict`), textOf(t, ctx, `#verify-steps`); !strings.Contains(verdict, "anchored on the ledger") || strings.Contains(verdict, "NOT") || !strings.Contains(steps, "voting power (> 2/3)") {
		t.Errorf("anonymous reading page: verdict %q, steps:\n%s", verdict, steps)
	}
	screenshot(t, ctx, "verify-withheld")
	for _, tc := range []struct {
		query, name string
		ok          bool
		fails       string // the step that must fail, and why
	}{
		{"", "verify-genuine", true, ""},
		{"?tamper=1", "verify-tampered", false, "the signature does not check"},
		{"?tamper=header", "verify-lying-header", false, "does not hash to the block the commit signed"},
	} {
		if tc.query == "" {
			signIn(t, ctx, shared.admin)
		}
		show(t, ctx, shared.url+"/explorer/"+tc.query+"#/reading/1", "/reading/1")
		verdict := textOf(t, ctx, `#verify-verdict`)
		class := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#verify-verdict').className`))
		steps := textOf(t, ctx, `#verify-steps`)
		if got := strings.Contains(class, "ok"); got != tc.ok {
			t.Errorf("%s: verdict %q (class %q); want ok=%v; steps:\n%s", tc.name, verdict, class, tc.ok, steps)
		}
		if tc.ok && (!strings.Contains(steps, "Ed25519 signature checks") || !strings.Contains(steps, "voting power (> 2/3)")) {
			t.Errorf("genuine reading: the signatures (device, validators) were not checked in the page:\n%s", steps)
		}
		if !tc.ok && !strings.Contains(steps, tc.fails) {
			t.Errorf("%s: no step failed with %q:\n%s", tc.name, tc.fails, steps)
		}
		screenshot(t, ctx, tc.name)
	}
}

// TestOtherPages loads every other page and checks it shows its data.
func TestOtherPages(t *testing.T) {
	ctx := tab(t)
	// A refusal for the security page: a truncated tx, refused by CheckTx.
	res, err := http.Post(shared.url+"/v1/txs", "application/cose", strings.NewReader("\xd2\x84\x40"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("truncated tx: %s; want 400", res.Status)
	}
	// Ledger text is shown as text: an organisation named with markup.
	const xss = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>`
	rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	xssOrg := fmt.Sprintf("xss-%d", time.Now().UnixNano()) // fresh for each run
	if _, err := client.New(shared.url).Send(rctx, shared.admin, "", &record.OrgCreate{ID: xssOrg, Name: xss}, true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ frag, sel, want string }{
		{"/orgs", "#orgs", devnet.DemoOrg},
		{"/org/" + xssOrg, "dl.kv", xss},
		{"/org/" + devnet.DemoOrg, "#devices", "sensor"},
		{"/grants", "#grants", "read"},
		{"/anchors", "#anchors", "did:key:"},
		{"/security", "#security", "reason=malformed"},
		{"/blocks", "#blocks", "height"},
		{"/tx/" + shared.tx, "pre.json", "read"},
		{"/api", "table", "/v1/events"},
		{"/agreements", "#agreements", "no agreements yet"},
		{"/mesh", "h1", "Mesh"}, // with or without a mesh on this devnet
	} {
		show(t, ctx, explorer(tc.frag), tc.frag)
		if text := textOf(t, ctx, tc.sel); !strings.Contains(text, tc.want) {
			t.Errorf("%s: %q lacks %q", tc.frag, text, tc.want)
		}
		screenshot(t, ctx, strings.ReplaceAll(strings.Trim(tc.frag, "/"), "/", "-")[:min(len(tc.frag)-1, 12)])
	}
	if pwned := get(t, ctx, chromedp.Evaluate[bool](`window.__pwned === 1`)); pwned {
		t.Error("markup in an organisation's name ran as script")
	}
	noScriptErrors(t, ctx)
}

// TestOpenAPIEndpointsAnswered calls every GET endpoint the OpenAPI
// document lists on a real node, with real parameter values: none may be
// missing (404 for the route, 405) or fail.
func TestOpenAPIEndpointsAnswered(t *testing.T) {
	need(t)
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name, In string
				Required bool
				Schema   struct{ Type, Pattern string }
			}
			Security []map[string]any
			Tags     []string
		}
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	gw := shared.d.Gateway(0).ID()
	values := map[string]string{
		"hash": shared.tx, "height": "1", "id": "", "gateway": gw, "index": "0",
		"device": shared.dev.ID(), "key": hex.EncodeToString(record.OrgKey(devnet.DemoOrg)),
	}
	ids := map[string]string{
		"/v1/orgs/{id}": devnet.DemoOrg, "/v1/devices/{id}": shared.dev.ID(), "/v1/devices/{id}/history": shared.dev.ID(),
		"/v1/grants/{id}": strconv.FormatUint(shared.grant, 10), "/v1/accounts/{id}/nonce": shared.admin.ID(),
		"/v1/agreements/{id}": "1", "/v1/agreements/{id}/history": "1", "/v1/devices/{id}/commands": shared.dev.ID(),
	}
	values["account"] = shared.admin.ID()
	values["event"] = "firmware.action=release"
	values["org"] = devnet.DemoOrg
	// No agreement exists on this devnet: these must answer with the
	// handler's own not_found, not the router's.
	absent := map[string]bool{"/v1/agreements/{id}": true, "/v1/agreements/{id}/history": true, "/v1/credits/{account}": true, "/v1/credits/{account}/transfers": true}
	for _, r := range api.Undocumented(shared.d.API(0).Routes()) {
		t.Errorf("node 0 serves %s, which api/openapi.json does not document", r)
	}
	streams := map[string]bool{"/v1/events": true, "/v1/readings/stream": true}
	served := map[string]bool{}
	for _, r := range shared.d.API(0).Routes() {
		served[r] = true
	}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	n := 0
	for path, ops := range doc.Paths {
		op, ok := ops["get"]
		if !ok {
			continue
		}
		if !served["GET "+path] && slices.Contains(op.Tags, "mesh") {
			t.Logf("GET %s: this devnet runs no mesh; skipped", path)
			continue
		}
		n++
		// A path parameter this test has no real value for (an endpoint
		// added later) gets a well-formed made-up one: the handler must
		// then answer not_found itself.
		made := false
		url := param.ReplaceAllStringFunc(path, func(m string) string {
			name := m[1 : len(m)-1]
			if v := ids[path]; name == "id" && v != "" {
				return v
			}
			if v := values[name]; v != "" && name != "id" {
				return v
			}
			made = true
			for _, p := range op.Parameters {
				if p.Name == name && p.Schema.Type == "integer" {
					return "1"
				}
				if p.Name == name && strings.Contains(p.Schema.Pattern, "{64}") {
					return strings.Repeat("0", 64)
				}
			}
			return "x"
		})
		q := []string{}
		for _, p := range op.Parameters {
			if p.In == "query" && (p.Name == "device" || p.Name == "key" || p.Name == "event" || p.Name == "org" && p.Required) {
				q = append(q, p.Name+"="+values[p.Name])
			}
		}
		if len(q) > 0 {
			url += "?" + strings.Join(q, "&")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", shared.url+url, nil)
		if path == "/v1/readings/stream" || path == "/v1/readings" || path == "/v1/readings/{index}" {
			// Values are served to the device (and its admins, grantees).
			tok, err := identity.NewCWT(shared.dev, shared.dev.ID(), shared.d.ChainID(), time.Now(), time.Minute)
			if err == nil {
				req.Header.Set("Authorization", "Bearer "+identity.EncodeCWTPassword(tok))
			}
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Errorf("GET %s: %v", url, err)
			continue
		}
		var body []byte
		if !streams[path] {
			body, _ = io.ReadAll(res.Body)
		}
		res.Body.Close()
		cancel()
		if (absent[path] || made) && res.StatusCode == http.StatusNotFound && !strings.Contains(string(body), "no such endpoint") {
			continue
		}
		// Endpoints that need a credential this test does not make must
		// refuse it in the API's error format, not be missing.
		if len(op.Security) > 0 && (res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden) && strings.Contains(string(body), `"error"`) {
			continue
		}
		if res.StatusCode/100 != 2 {
			t.Errorf("GET %s (documented as %s): %s %s", url, path, res.Status, body)
		}
	}
	if n < 20 {
		t.Fatalf("only %d GET endpoints documented", n)
	}
	t.Logf("%d documented GET endpoints answered", n)
}
