package web_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/internal/testutil"
)

// TestVerifyArchivedReading: a reading whose log entry was archived (its
// segment published through the file service, its bytes dropped at the
// gateway) and whose states are pruned verifies in the explorer, value
// shown to a reader who may read it — the explorer's path of "still
// verifiable after pruning and archiving". It restarts the shared node
// with archiving on, so it runs last (this file's name sorts last).
func TestVerifyArchivedReading(t *testing.T) {
	need(t)
	if shared.browser == nil {
		t.Skip("no Chromium found: install Debian's chromium (scripts/test does) to run the browser tests")
	}
	wctx := testutil.Context(t, 2*time.Minute)
	d := shared.d
	c := d.Net().Config(0)
	a := &c.Gateway.Archive // node.ArchiveConfig: the package node imports this one
	a.Enabled, a.SegmentEntries, a.MinPins, a.Interval.Duration = true, 4, -1, 100*time.Millisecond
	if err := d.StopNode(0); err != nil {
		t.Fatal(err)
	}
	d.Net().SetConfig(0, c)
	if err := d.StartNode(0); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, wctx, "entries 0..3 archived and dropped at the gateway", func() bool {
		gw := d.Gateway(0)
		if gw == nil {
			return false
		}
		_, err := gw.Log().Entry(1)
		return errors.Is(err, datalog.ErrArchived)
	})
	// As its organisation's admin: a caller the read rule refuses gets no
	// auth height for an archived entry (no segment is fetched for it).
	p, err := client.New(shared.url).WithIdentity(&client.Identity{Key: shared.admin}).WaitReadingProof(wctx, 1, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if p.AuthHeight == 0 || p.Anchor.Height == 0 {
		t.Fatalf("archived reading 1 for its organisation's admin: auth height %d, anchor height %d; want both", p.AuthHeight, p.Anchor.Height)
	}
	testutil.WaitFor(t, wctx, "the states of the reading's heights pruned", func() bool {
		_, errAuth := d.App(0).View(p.AuthHeight)
		_, errAnchor := d.App(0).View(p.Anchor.Height)
		return errAuth != nil && errAnchor != nil
	})

	ctx := tab(t)
	signIn(t, ctx, shared.admin)
	show(t, ctx, shared.url+"/explorer/#/reading/1", "/reading/1")
	verdict, steps := textOf(t, ctx, `#verify-verdict`), textOf(t, ctx, `#verify-steps`)
	class := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#verify-verdict').className`))
	if !strings.Contains(class, "ok") || !strings.Contains(steps, "Ed25519 signature checks") || !strings.Contains(steps, "voting power (> 2/3)") {
		t.Errorf("archived reading 1 in the explorer: verdict %q (class %q); steps:\n%s", verdict, class, steps)
	}
	if w := textOf(t, ctx, `#view`); strings.Contains(w, "not shown") || !strings.Contains(w, "temperature/celsius") {
		t.Errorf("archived reading 1 for its organisation's admin: the value is not shown:\n%s", w)
	}
	screenshot(t, ctx, "verify-archived")
}
