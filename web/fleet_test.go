package web_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// TestFleetPage: an organisation with three sensors — one reporting (with
// a status report), one silent for ten minutes, one never seen. Not signed
// in, the fleet page shows the gateway's counts by class and state and no
// device, no value; signed in as the organisation's admin, every device,
// silent first, with what it reports; the label and status filters narrow
// the list; the organisation page links to it.
func TestFleetPage(t *testing.T) {
	ctx := tab(t)
	org, admin := newOrg(t, "fleet")
	reg := func(labels map[string]string) *identity.Key { return registerIn(t, admin, org, "sensor", labels) }
	ok, silent, never := reg(map[string]string{"site": "north"}), reg(map[string]string{"site": "north"}), reg(nil)
	battery := 77.0
	st, err := record.Marshal(&record.StatusReport{Battery: &battery, Firmware: "2.1.0", Uptime: 7200})
	if err != nil {
		t.Fatal(err)
	}
	v := 21.5
	// Dated two minutes ahead (within the gateway's skew): ok for the whole test.
	post(t, ok, reading.Reading{Seq: 1, Time: time.Now().Add(2 * time.Minute), ContentType: "temperature/celsius", Value: &v},
		reading.Reading{Seq: 2, Time: time.Now().Add(2 * time.Minute), ContentType: record.ContentStatus, Bytes: st})
	post(t, silent, reading.Reading{Seq: 1, Time: time.Now().Add(-10 * time.Minute), ContentType: "temperature/celsius", Value: &v})

	frag := "/fleet/" + org
	// Public: counts only, once the gateway's census (reused 10 s) has the readings.
	deadline := time.Now().Add(40 * time.Second)
	for {
		show(t, ctx, explorer(frag), frag)
		if cell(t, ctx, `#fleet-counts tr[data-class="sensor"]`, `[data-state="ok"]`) == "1" &&
			cell(t, ctx, `#fleet-counts tr[data-class="sensor"]`, `[data-state="silent"]`) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("public counts: %q", textOf(t, ctx, "#fleet-counts"))
		}
		time.Sleep(time.Second)
		do(t, ctx, chromedp.Navigate(explorer("/")))
	}
	if n := cell(t, ctx, `#fleet-counts tr[data-class="sensor"]`, `[data-state="never"]`); n != "1" {
		t.Errorf("public never: %q; want 1", n)
	}
	page := textOf(t, ctx, "#view")
	if count(t, ctx, "#fleet-devices") != 0 || count(t, ctx, "#fleet-public") != 1 || strings.Contains(page, "2.1.0") || strings.Contains(page, "77 %") {
		t.Fatalf("the public view shows devices or values:\n%s", page)
	}

	signIn(t, ctx, admin)
	show(t, ctx, explorer(frag), frag)
	rows := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#fleet-devices tbody tr')].map((r) => r.dataset.id + ' ' + r.dataset.state)`))
	want := []string{silent.ID() + " silent", never.ID() + " never", ok.ID() + " ok"}
	if strings.Join(rows, ",") != strings.Join(want, ",") {
		t.Fatalf("signed in, rows %v; want %v (silent first)", rows, want)
	}
	row := fmt.Sprintf(`#fleet-devices tr[data-id="%s"]`, ok.ID())
	if b, fw, up := cell(t, ctx, row, ".battery"), cell(t, ctx, row, ".fw"), cell(t, ctx, row, ".uptime"); b != "77 %" || fw != "2.1.0" || up != "2 h" {
		t.Errorf("reported: battery %q firmware %q uptime %q; want 77 %%, 2.1.0, 2 h", b, fw, up)
	}
	if by := cell(t, ctx, row, ".by"); !strings.Contains(by, "ago") && !strings.Contains(by, "s") {
		t.Errorf("last seen per gateway: %q", by)
	}
	// Filters: a label, then a status.
	lf := frag + "?label=site=north"
	show(t, ctx, explorer(frag+"?label=site%3Dnorth"), lf)
	if n := count(t, ctx, "#fleet-devices tbody tr[data-id]"); n != 2 || count(t, ctx, fmt.Sprintf(`#fleet-devices tr[data-id="%s"]`, never.ID())) != 0 {
		t.Errorf("label site=north: %d rows; want the 2 labelled devices", n)
	}
	show(t, ctx, explorer(frag+"?status=silent"), frag+"?status=silent")
	if rows := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#fleet-devices tbody tr[data-id]')].map((r) => r.dataset.id)`)); len(rows) != 1 || rows[0] != silent.ID() {
		t.Errorf("status silent: %v; want only %s", rows, silent.ID())
	}
	show(t, ctx, explorer("/org/"+org), "/org/"+org)
	if href := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#org-fleet').getAttribute('href')`)); href != "#/fleet/"+org {
		t.Errorf("the organisation page links to %q; want #/fleet/%s", href, org)
	}
	noScriptErrors(t, ctx)
}

// newOrg creates an organisation named prefix-NANOS with a new admin.
func newOrg(t *testing.T, prefix string) (string, *identity.Key) {
	t.Helper()
	org := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	admin := testutil.Key(t, identity.Ed25519)
	send(t, admin, &record.OrgCreate{ID: org})
	return org, admin
}

// registerIn registers a new device of class, with labels, in org.
func registerIn(t *testing.T, admin *identity.Key, org, class string, labels map[string]string) *identity.Key {
	t.Helper()
	dev := testutil.Key(t, identity.Ed25519)
	proof, err := dev.Sign(record.PossessionMessage(shared.d.ChainID(), org, dev.ID()))
	if err != nil {
		t.Fatal(err)
	}
	send(t, admin, &record.DeviceRegister{Org: org, Device: dev.ID(), Class: class, Labels: labels, Proof: proof})
	return dev
}

// post sends one envelope of dev's readings to the gateway.
func post(t *testing.T, dev *identity.Key, rs ...reading.Reading) {
	t.Helper()
	raw, err := reading.Sign(dev, dev.ID(), rs...)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(shared.url+"/v1/readings", "application/cose", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/readings: %s", res.Status)
	}
}
