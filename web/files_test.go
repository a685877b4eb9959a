package web_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/files/firmware"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// send signs m with key and waits for its block; the tx must succeed.
func send(t *testing.T, key *identity.Key, m record.Msg) *client.SubmitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := client.New(shared.url).Send(ctx, key, "", m, true)
	if err != nil {
		t.Fatalf("%s: %v", m.Kind(), err)
	}
	if res.Code != 0 {
		t.Fatalf("%s: %s %s", m.Kind(), res.Reason, res.Log)
	}
	return res
}

// registerClass registers a device of class in the demo organisation.
func registerClass(t *testing.T, class, firmware string) *identity.Key {
	t.Helper()
	dev, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := dev.Sign(record.PossessionMessage(shared.d.ChainID(), devnet.DemoOrg, dev.ID()))
	if err != nil {
		t.Fatal(err)
	}
	send(t, shared.admin, &record.DeviceRegister{Org: devnet.DemoOrg, Device: dev.ID(), Class: class, Firmware: firmware, Proof: proof})
	return dev
}

// addContent stores b in node 0's file service and returns its CID.
func addContent(t *testing.T, b []byte, key []byte) (string, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var a files.Added
	var err error
	if key != nil {
		a, err = shared.d.Files(0).AddPrivate(ctx, bytes.NewReader(b), key, nil)
	} else {
		a, err = shared.d.Files(0).Add(ctx, bytes.NewReader(b), nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return a.CID.String(), a.Size
}

// live waits until a JavaScript condition holds on a page that was not
// reloaded (window.__marker survives), and fails with what sel shows if not.
func live(t *testing.T, ctx context.Context, cond, sel, what string) {
	t.Helper()
	js := fmt.Sprintf(`(%s) && window.__marker === 'no reload'`, cond)
	if err := poll(ctx, js, 45*time.Second); err != nil {
		got := get(t, ctx, chromedp.Evaluate[string](fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.innerText : '(no ' + %s + ')'; })()`, jsString(sel), jsString(sel))))
		t.Fatalf("%s not shown live: %v\n%s shows:\n%s", what, err, sel, got)
	}
}

// longTab is tab with a deadline for tests that wait for many blocks.
func longTab(t *testing.T) context.Context {
	t.Helper()
	need(t)
	if shared.browser == nil {
		tab(t) // skips, saying why
	}
	ctx, cancel := chromedp.NewContext(shared.browser)
	t.Cleanup(cancel)
	ctx, cancel2 := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel2)
	return ctx
}

func markPage(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := poll(ctx, `document.querySelector('#live.on') !== null`, 15*time.Second); err != nil {
		t.Fatalf("the event stream did not connect: %v", err)
	}
	get(t, ctx, chromedp.Evaluate[string](`window.__marker = 'no reload'`))
}

// TestFilesPages publishes a public and a private file on the devnet's
// ledger (real content in node 0's file service), pins one through the
// gateway's tx queue, shares and revokes the other: the files page and a
// file's page show each step live, with the numbers the ledger holds, and
// never a wrapped key.
func TestFilesPages(t *testing.T) {
	ctx := longTab(t)
	org := devnet.DemoOrg
	// Fresh names and contents for each run (go test -count=2).
	run := time.Now().UnixNano()
	pubName, privName := fmt.Sprintf("manual-%d.txt", run), fmt.Sprintf("secret-%d.csv", run)
	show(t, ctx, explorer("/files"), "/files")
	markPage(t, ctx)

	// A public file appears in the list, then its pin by the gateway (a
	// node may record its pins of content added to it by itself: the pin
	// below is then a second record of the same pin).
	pub, pubSize := addContent(t, fmt.Appendf(nil, "thingnet explorer test: a public manual (%d)\n", run), nil)
	send(t, shared.admin, &record.FilePublish{Org: org, Name: pubName, CID: pub, Size: pubSize, ContentType: "text/plain"})
	row := `#files tr[data-name="` + pubName + `"]`
	live(t, ctx, fmt.Sprintf(`(r => r && r.querySelector('.vis').innerText === 'public' && r.querySelector('.size').title === '%d bytes')(document.querySelector(%s))`, pubSize, jsString(row)), "#files", "the published file")
	gw := shared.d.Gateway(0)
	pinned := make(chan error, 1)
	if err := gw.Enqueue(&record.FilePinMsg{CID: pub}, func(err error) { pinned <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-pinned:
		if err != nil {
			t.Fatalf("the gateway's pin: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway's pin was not committed in 30 s")
	}
	live(t, ctx, fmt.Sprintf(`(r => r && r.querySelector('.pins').dataset.n === '1' && r.querySelector('.pins').innerHTML.includes(%s))(document.querySelector(%s))`, jsString(gw.ID()), jsString(row)), "#files", "the gateway's pin")
	screenshot(t, ctx, "files")

	// A private file, encrypted for a device of the organisation.
	other := registerClass(t, "sensor", "1.0.0")
	var recs []files.Recipient
	for _, id := range []string{shared.dev.ID()} {
		var d struct{ Record record.Device }
		if err := client.New(shared.url).Get(context.Background(), "/v1/devices/"+id, &d); err != nil {
			t.Fatal(err)
		}
		r, err := files.RecipientOf(&d.Record)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	key := make([]byte, 32)
	rand.Read(key)
	priv, privSize := addContent(t, fmt.Appendf(nil, "device,value\nsensor-1,21.5\nrun,%d\n", run), key)
	keys, err := files.WrapKey(key, org, privName, 1, recs)
	if err != nil {
		t.Fatal(err)
	}
	pubRes := send(t, shared.admin, &record.FilePublish{Org: org, Name: privName, CID: priv, Size: privSize, ContentType: "text/csv", Private: true, Keys: keys})
	prow := `#files tr[data-name="` + privName + `"]`
	live(t, ctx, fmt.Sprintf(`(r => r && r.querySelector('.vis').innerText === 'private' && r.querySelector('.recipients').innerText === '1')(document.querySelector(%s))`, jsString(prow)), "#files", "the private file")

	// Its page, kept open: a fetch grant and a share to another device,
	// then a revocation, arrive live.
	frag := "/file/" + org + "/" + privName
	show(t, ctx, explorer(frag), frag)
	markPage(t, ctx)
	if h := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#file-tx a').getAttribute('href')`)); h != "#/tx/"+pubRes.Hash {
		t.Errorf("publication tx link %q; want #/tx/%s", h, pubRes.Hash)
	}
	send(t, shared.admin, &record.GrantAdd{Grantor: "org:" + org, Subject: "device:" + other.ID(), Action: record.ActionFetch, Resource: record.FileResource(org, privName)})
	r2, err := files.RecipientOf(&record.Device{ID: other.ID(), Key: other.ID()})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := files.WrapKey(key, org, privName, 1, []files.Recipient{r2})
	if err != nil {
		t.Fatal(err)
	}
	send(t, shared.admin, &record.FileShare{Org: org, Name: privName, Keys: k2})
	live(t, ctx, `document.querySelectorAll('#recipients tbody tr').length === 2 && document.querySelectorAll('#file-history li').length === 2 && document.querySelector('#file-grants').innerText.includes('/file/`+privName+`')`, "#view", "the share and its grant")
	send(t, shared.admin, &record.FileRevoke{Org: org, Name: privName, Recipient: other.ID()})
	live(t, ctx, `document.querySelectorAll('#recipients tbody tr').length === 1 && [...document.querySelectorAll('#file-history li')].map(li => li.dataset.action).join() === 'revoke,share,publish'`, "#file-history", "the revocation")
	html := get(t, ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	for _, k := range append(keys, k2...) {
		if s := base64.StdEncoding.EncodeToString(k.Sealed); strings.Contains(html, s[:24]) {
			t.Errorf("the page shows the key wrapped for %s", k.Recipient)
		}
	}
	if !strings.Contains(textOf(t, ctx, `#recipients`), "x25519") {
		t.Errorf("recipients: %q lacks the HPKE suite", textOf(t, ctx, `#recipients`))
	}
	screenshot(t, ctx, "file-private")

	// The public file's page: its pin and the pin's history.
	frag = "/file/" + org + "/" + pubName
	show(t, ctx, explorer(frag), frag)
	if n := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#file-pins').dataset.n`)); n != "1" {
		t.Errorf("pinned by %s nodes; want 1", n)
	}
	if h := textOf(t, ctx, `#pin-history`); !strings.Contains(h, "pinned") {
		t.Errorf("pin history: %q", h)
	}
	if got := textOf(t, ctx, `#file-cid`); got != pub {
		t.Errorf("CID %q; want %s", got, pub)
	}
	noScriptErrors(t, ctx)
	screenshot(t, ctx, "file-public")
}

// TestFirmwarePages publishes a vendor-signed release, approves it, rolls
// it out to four devices and has them report: one install, one image the
// organisation never approved, then failures until the rollout aborts. The
// open pages follow every step.
func TestFirmwarePages(t *testing.T) {
	ctx := longTab(t)
	org, class := devnet.DemoOrg, fmt.Sprintf("valve-%d", time.Now().UnixNano()) // fresh for each run
	devs := make([]*identity.Key, 4)
	for i := range devs {
		devs[i] = registerClass(t, class, "1.0.0")
	}
	show(t, ctx, explorer("/firmware"), "/firmware")
	markPage(t, ctx)

	image := bytes.Repeat([]byte("valve firmware 2.0.0 "), 300)
	cid, _ := addContent(t, image, nil)
	digest := sha256.Sum256(image)
	m := &record.FirmwareManifest{Vendor: org, Class: class, Version: "2.0.0", Seq: 1, Digest: digest[:], Size: uint64(len(image)), CID: cid}
	signed, err := firmware.Sign(shared.admin, shared.admin.ID(), m)
	if err != nil {
		t.Fatal(err)
	}
	send(t, shared.admin, &record.FirmwareRelease{Manifest: signed})
	rel := fmt.Sprintf(`#releases tr[data-vendor="%s"][data-class="%s"][data-seq="1"]`, org, class)
	live(t, ctx, fmt.Sprintf(`(r => r && r.querySelector('.sig .badge.ok') !== null && r.innerText.includes('2.0.0'))(document.querySelector(%s))`, jsString(rel)), "#releases", "the release, its vendor signature checked")
	send(t, shared.admin, &record.FirmwareApprove{Org: org, Vendor: org, Class: class, Seq: 1})
	start := send(t, shared.admin, &record.FirmwareRollout{Org: org, Vendor: org, Class: class, Seq: 1, Percent: 100, BlocksPerWave: 1000, MaxFailures: 2})
	ro := fmt.Sprintf(`#rollouts tr[data-org="%s"][data-class="%s"]`, org, class)
	live(t, ctx, fmt.Sprintf(`(r => r && r.querySelector('.status').innerText === 'active' && r.querySelector('.offered').innerText === '100%%' && r.querySelector('.failed').innerText === '0 / 2')(document.querySelector(%s))`, jsString(ro)), "#rollouts", "the rollout")
	if a := textOf(t, ctx, `#approvals`); !strings.Contains(a, "2.0.0") {
		t.Errorf("approvals: %q", a)
	}
	screenshot(t, ctx, "firmware")

	// The class's page, kept open while the devices report.
	frag := "/firmware/" + org + "/" + class
	show(t, ctx, explorer(frag), frag)
	markPage(t, ctx)
	card := func(id string) string { return fmt.Sprintf(`document.querySelector('#%s').innerText`, id) }
	if got := textOf(t, ctx, `#view .cards`); !strings.Contains(got, "100%") || count(t, ctx, `#class-devices tbody tr`) != len(devs) || count(t, ctx, `#class-devices td.offered`) != len(devs) {
		t.Fatalf("rollout page: cards %q, %d device rows", got, count(t, ctx, `#class-devices tbody tr`))
	}
	if st := textOf(t, ctx, `#rollout-status`); st != "active" || !strings.Contains(textOf(t, ctx, `#view dl.kv`), fmt.Sprintf("%d", start.Height)) {
		t.Errorf("status %q, started at %d: %q", st, start.Height, textOf(t, ctx, `#view dl.kv`))
	}
	send(t, devs[0], &record.FirmwareReport{Digest: digest[:], Version: "2.0.0"})
	live(t, ctx, card("rollout-installed")+` === '1' && `+fmt.Sprintf(`document.querySelector('#class-devices tr[data-id="%s"] .fw').innerText.startsWith('2.0.0')`, devs[0].ID()), "#view", "the install")
	bad := sha256.Sum256([]byte("an image nobody approved"))
	send(t, devs[3], &record.FirmwareReport{Digest: bad[:], Version: "6.6.6"})
	live(t, ctx, fmt.Sprintf(`document.querySelector('#class-devices tr[data-id="%s"] .flag').innerText === 'firmware_unapproved'`, devs[3].ID()), "#class-devices", "the unapproved image")
	send(t, devs[1], &record.FirmwareReport{Digest: digest[:], Version: "2.0.0", Failed: true})
	live(t, ctx, card("rollout-failed")+` === '1 / 2' && `+card("rollout-status")+` === 'active'`, "#view .cards", "the first failure")
	abort := send(t, devs[2], &record.FirmwareReport{Digest: digest[:], Version: "2.0.0", Failed: true})
	want := "aborted at height " + strconv.FormatInt(abort.Height, 10)
	live(t, ctx, card("rollout-failed")+` === '2 / 2' && `+card("rollout-status")+` === `+jsString(want)+` && `+card("rollout-offered")+` === '0%' && document.querySelectorAll('#class-devices td.offered').length === 4 && [...document.querySelectorAll('#class-devices td.offered')].every(td => td.innerText === 'no')`, "#view", "the abort")
	if w := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#wave-bars rect.fill.bad').getAttribute('width')`)); w == "0.0" {
		t.Errorf("the failures bar is empty at the abort")
	}
	noScriptErrors(t, ctx)
	screenshot(t, ctx, "firmware-rollout-aborted")

	// The overview agrees, and lists the flagged device.
	show(t, ctx, explorer("/firmware"), "/firmware")
	if st := textOf(t, ctx, ro+` .status`); st != want {
		t.Errorf("rollouts table: status %q; want %q", st, want)
	}
	if f := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#flagged').innerHTML`)); !strings.Contains(f, devs[3].ID()) {
		t.Errorf("flagged devices lack %s", devs[3].ID())
	}
	cls := fmt.Sprintf(`#classes tr[data-org="%s"][data-class="%s"]`, org, class)
	if n, f := textOf(t, ctx, cls+` .n`), textOf(t, ctx, cls+` .flagged`); n != "4" || f != "1" || !strings.Contains(textOf(t, ctx, cls), "2.0.0 ×1") {
		t.Errorf("device classes: %q (%s devices, %s flagged); want 4 devices, 1 flagged, one running 2.0.0", textOf(t, ctx, cls), n, f)
	}
	// The installing device's history shows both versions it ran.
	frag = "/device/" + devs[0].ID()
	show(t, ctx, explorer(frag), frag)
	if h := textOf(t, ctx, `#history`); !strings.Contains(h, "firmware=2.0.0") {
		t.Errorf("device history lacks the install: %q", h)
	}
	noScriptErrors(t, ctx)
}

// TestFirmwareWaves rolls a release out to half of a class per wave: the
// open page moves to the second wave as blocks pass, shows each device's
// bucket as the ledger computes it, and calls the rollout complete once
// every device runs the release. With ?tamper=firmware the page checks a
// copy of each release with one signature byte changed, and refuses it.
func TestFirmwareWaves(t *testing.T) {
	ctx := longTab(t)
	org, class := devnet.DemoOrg, fmt.Sprintf("lamp-%d", time.Now().UnixNano()) // fresh for each run
	devs := []*identity.Key{registerClass(t, class, "0.9"), registerClass(t, class, "0.9"), registerClass(t, class, "0.9")}
	image := bytes.Repeat([]byte("lamp firmware 1.1 "), 100)
	digest := sha256.Sum256(image)
	signed, err := firmware.Sign(shared.admin, shared.admin.ID(), &record.FirmwareManifest{Vendor: org, Class: class, Version: "1.1", Seq: 3, Digest: digest[:], Size: uint64(len(image))})
	if err != nil {
		t.Fatal(err)
	}
	send(t, shared.admin, &record.FirmwareRelease{Manifest: signed})
	send(t, shared.admin, &record.FirmwareApprove{Org: org, Vendor: org, Class: class, Seq: 3})
	ro := record.FirmwareRollout{Org: org, Vendor: org, Class: class, Seq: 3, Percent: 50, BlocksPerWave: 8, MaxFailures: 1}
	start := send(t, shared.admin, &ro)
	frag := "/firmware/" + org + "/" + class
	show(t, ctx, explorer(frag), frag)
	markPage(t, ctx)
	rec := &record.FirmwareRolloutRecord{FirmwareRollout: ro, Start: start.Height}
	for _, d := range devs {
		sel := fmt.Sprintf(`#class-devices tr[data-id="%s"] td`, d.ID())
		cells := get(t, ctx, chromedp.Evaluate[[]string](fmt.Sprintf(`[...document.querySelectorAll(%s)].map(td => td.innerText)`, jsString(sel))))
		if len(cells) < 6 || cells[4] != strconv.FormatUint(rec.Bucket(d.ID()), 10) {
			t.Fatalf("device %s: cells %q; want bucket %d (the ledger's)", d.ID(), cells, rec.Bucket(d.ID()))
		}
	}
	if wave := textOf(t, ctx, `#rollout-wave`); wave == "1" {
		if off := textOf(t, ctx, `#rollout-offered`); off != "50%" {
			t.Errorf("wave 1 offers %s; want 50%%", off)
		}
	} else {
		t.Logf("the page loaded at wave %s (a slow machine): the move to wave 2 is not seen live", wave)
	}
	live(t, ctx, `document.querySelector('#rollout-wave').innerText === '2' && document.querySelector('#rollout-offered').innerText === '100%' && [...document.querySelectorAll('#class-devices td.offered')].every(td => td.innerText === 'yes')`, "#view", "the second wave")
	for _, d := range devs {
		send(t, d, &record.FirmwareReport{Digest: digest[:], Version: "1.1"})
	}
	live(t, ctx, `document.querySelector('#rollout-status').innerText === 'complete' && document.querySelector('#rollout-installed').innerText === '3'`, "#view", "the complete rollout")
	noScriptErrors(t, ctx)
	screenshot(t, ctx, "firmware-rollout-complete")

	show(t, ctx, shared.url+"/explorer/?tamper=firmware#/firmware", "/firmware")
	rel := fmt.Sprintf(`#releases tr[data-vendor="%s"][data-class="%s"][data-seq="3"] .sig`, org, class)
	if sig := textOf(t, ctx, rel); !strings.Contains(sig, "NOT verified: the signature does not check") {
		t.Errorf("a release with a changed signature byte: %q", sig)
	}
	show(t, ctx, explorer("/firmware"), "/firmware")
	if sig := textOf(t, ctx, rel); sig != "vendor signature checks" {
		t.Errorf("the genuine release: %q", sig)
	}
	if st := textOf(t, ctx, fmt.Sprintf(`#rollouts tr[data-org="%s"][data-class="%s"] .status`, org, class)); st != "complete" {
		t.Errorf("rollouts table: %q; want complete", st)
	}
	noScriptErrors(t, ctx)
}

// TestTxSearch asks a real node's transaction index through GET /v1/txs:
// the txs of one file, newest first and paged, and clear refusals.
func TestTxSearch(t *testing.T) {
	need(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := client.New(shared.url)
	name := fmt.Sprintf("search-%d.bin", time.Now().UnixNano())
	var hashes []string
	for i := range 3 {
		cid, size := addContent(t, []byte(name+strconv.Itoa(i)), nil)
		n := fmt.Sprintf("%s.%d", name, i)
		hashes = append(hashes, send(t, shared.admin, &record.FilePublish{Org: devnet.DemoOrg, Name: n, CID: cid, Size: size}).Hash)
	}
	// The index trails the commit by a moment: wait for the last one.
	for {
		var last client.TxSearch
		if err := c.Get(ctx, "/v1/txs?event=file.name="+name+".2", &last); err != nil {
			t.Fatal(err)
		}
		if last.Total > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s.2 not in the index after a minute", name)
		case <-time.After(100 * time.Millisecond):
		}
	}
	var one client.TxSearch
	q := "/v1/txs?event=file.org=" + devnet.DemoOrg + "&event=file.name=" + name + ".1"
	if err := c.Get(ctx, q, &one); err != nil {
		t.Fatal(err)
	}
	if one.Total != 1 || len(one.Items) != 1 || one.Items[0].Hash != hashes[1] || one.Items[0].Kind != record.KindFilePublish || one.Next != 0 {
		t.Fatalf("%s: %+v; want the one publication %s", q, one, hashes[1])
	}
	var p1, p2 client.TxSearch
	if err := c.Get(ctx, "/v1/txs?event=file.action=publish&limit=2", &p1); err != nil {
		t.Fatal(err)
	}
	if p1.Total < 3 || len(p1.Items) != 2 || p1.Next != 2 {
		t.Fatalf("page 1: total %d, %d items, next %d", p1.Total, len(p1.Items), p1.Next)
	}
	if err := c.Get(ctx, "/v1/txs?event=file.action=publish&limit=2&page=2", &p2); err != nil {
		t.Fatal(err)
	}
	if len(p2.Items) == 0 || p1.Items[1].Height < p2.Items[0].Height || p1.Items[0].Height < p1.Items[1].Height {
		t.Errorf("not newest first: page 1 at heights %d, %d; page 2 starts at %d", p1.Items[0].Height, p1.Items[1].Height, p2.Items[0].Height)
	}
	for _, tc := range []struct {
		q      string
		status int
	}{
		{"/v1/txs", 400},
		{"/v1/txs?event=file.cid", 400},
		{"/v1/txs?event=file.cid=x'%20OR%20tx.height>'0", 400},
		{"/v1/txs?event=file.action=publish&limit=101", 400},
		{"/v1/txs?event=file.action=publish&page=0", 400},
		{"/v1/txs?event=file.action=publish&page=100000", 404},
	} {
		res, err := http.Get(shared.url + tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var body client.ErrorBody
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != tc.status || err != nil || body.Error.Message == "" {
			t.Errorf("GET %s: %s %+v; want %d with a message", tc.q, res.Status, body, tc.status)
		}
	}
}
