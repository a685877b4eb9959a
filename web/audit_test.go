package web_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/thingnet/thingnet/auditbundle"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/proof"
)

// TestAuditBundleDrop: a bundle the organisation's admin exported, dropped
// on the explorer's #/audit page, is checked in the page from a header
// whose hash comes from the node; with one byte of a reading or of the
// state's header changed, it is refused naming the item.
func TestAuditBundleDrop(t *testing.T) {
	ctx := tab(t)
	gctx := testutil.Context(t, time.Minute)
	c := client.New(shared.url)
	b, err := auditbundle.Export(gctx, c.WithIdentity(&client.Identity{Key: shared.admin}), auditbundle.ExportOptions{Org: devnet.DemoOrg, Devices: []string{shared.dev.ID()}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Header(gctx, b.TrustHeight)
	if err != nil {
		t.Fatal(err)
	}
	trust := fmt.Sprintf("%d:%X", b.TrustHeight, []byte(h.SignedHeader.Hash()))

	show(t, ctx, explorer("/audit"), "/audit")
	drop := func(data []byte) string {
		t.Helper()
		js := fmt.Sprintf(`(() => {
			document.querySelector('#audit-trust').value = %s;
			delete document.querySelector('#audit-result').dataset.done;
			const dt = new DataTransfer();
			dt.items.add(new File([%s], 'demo.bundle', { type: 'application/json' }));
			document.querySelector('#audit-drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
			return true;
		})()`, jsString(trust), jsString(string(data)))
		get(t, ctx, chromedp.Evaluate[bool](js))
		if err := poll(ctx, `document.querySelector('#audit-result').dataset.done === '1'`, 20*time.Second); err != nil {
			t.Fatalf("the page did not finish checking the bundle: %v", err)
		}
		return textOf(t, ctx, "#audit-verdict")
	}
	if got := drop(data); !strings.Contains(got, fmt.Sprintf("verified: %d log entries in full, 0 erased, 0 withheld", readings)) {
		t.Errorf("the bundle as exported: %q", got)
	}
	if got := textOf(t, ctx, "#audit-devices"); !strings.Contains(got, shared.dev.ID()) || !strings.Contains(got, fmt.Sprintf("%d in %d entries", readings, readings)) {
		t.Errorf("the devices verified: %q", got)
	}
	screenshot(t, ctx, "audit-verified")

	for _, c := range []struct {
		name   string
		change func(b *auditbundle.Bundle)
		want   string
	}{
		{"a reading's byte", func(b *auditbundle.Bundle) { e := b.Readings[2].Envelope; e[len(e)-1] ^= 1 }, "reading 2 (gateway "},
		{"the state header's app hash", func(b *auditbundle.Bundle) {
			sh := &b.Headers[len(b.Headers)-1].SignedHeader
			sh.AppHash[0] ^= 1
		}, fmt.Sprintf("header %d: ", b.StateHeight+1)},
	} {
		f, err := auditbundle.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		c.change(f)
		forged, err := f.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got := drop(forged)
		t.Logf("%s changed: %s", c.name, got)
		if !strings.HasPrefix(got, "refused: ") || !strings.Contains(got, c.want) {
			t.Errorf("%s changed: %q, want a refusal naming %q", c.name, got, c.want)
		}
	}
	screenshot(t, ctx, "audit-refused")

	// An erased entry (as a gateway answers it after an erasure): its hash
	// and place in the anchored log are checked, not as a failure.
	e, err := auditbundle.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	r := &e.Readings[0]
	r.EntryHash = proof.LeafHash(e.ProofOf(0).Entry())
	r.Envelope, r.Signer = nil, nil
	r.Withheld = &proof.Unavailable{Code: proof.CodeErased, Message: "erased"}
	e.Exporter, e.Signature = "", nil
	erased, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if got := drop(erased); !strings.Contains(got, fmt.Sprintf("verified: %d log entries in full, 1 erased, 0 withheld", readings-1)) {
		t.Errorf("a bundle with an erased entry: %q", got)
	}
	noScriptErrors(t, ctx)
}
