package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// sealedBatch is 100 readings sealed by Go to a data key of one suite,
// and the data key's share for a reader: what the device page opens.
type sealedBatch struct {
	Chain    string              `json:"chain"`
	Device   string              `json:"device"`
	Reader   []byte              `json:"reader"` // PKCS #8
	ReaderID string              `json:"readerID"`
	Share    record.DataKeyShare `json:"share"`
	DK       record.DataKey      `json:"dk"`
	Sealed   []*reading.Sealed   `json:"sealed"`
	WebDH    bool                `json:"webDH"`

	readings []reading.Reading
	reader   *identity.Key
}

func newSealedBatch(b testing.TB, s identity.Suite, n int) *sealedBatch {
	b.Helper()
	alg := identity.Ed25519
	if s == identity.SuiteP256 {
		alg = identity.P256
	}
	reader, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		b.Fatal(err)
	}
	dk, err := identity.GenerateKey(alg)
	if err != nil {
		b.Fatal(err)
	}
	pub, err := dk.HPKEPublicKey(s)
	if err != nil {
		b.Fatal(err)
	}
	der, err := identity.MarshalPrivateKey(reader)
	if err != nil {
		b.Fatal(err)
	}
	sb := &sealedBatch{Chain: "bench-chain", Device: "did:key:z6MkbenchDevice", Reader: der, ReaderID: reader.ID(), reader: reader,
		DK: record.DataKey{Org: "bench", Version: 1, Suite: uint8(s), Key: pub}}
	sh, err := client.WrapDataKey(sb.Chain, "bench", 1, reader.ID(), dk)
	if err != nil {
		b.Fatal(err)
	}
	sb.Share = record.DataKeyShare{Org: "bench", Version: 1, Grantee: reader.ID(), Suite: sh.Suite, Sealed: sh.Sealed}
	for i := range n {
		v := float64(i)
		r, err := reading.SealReading(reading.Reading{Seq: uint64(i + 1), Time: time.Now(), Value: &v}, sb.Chain, sb.Device, reading.DataKey{Version: 1, Suite: s, Key: pub})
		if err != nil {
			b.Fatal(err)
		}
		r.Device = sb.Device
		sb.readings = append(sb.readings, r)
		sb.Sealed = append(sb.Sealed, r.Sealed)
	}
	return sb
}

// openInPage is what the device page does for 100 sealed readings: unwrap
// the reader's share, check it against the published data key, open each
// value (web/assets/keys.js). It returns the time the page measured.
const openInPage = `(async () => {
	const keys = await import('./keys.js');
	const d = window.__bench;
	keys.options.webDH = d.webDH ?? true;
	const reader = await keys.privateKey(Uint8Array.from(atob(d.reader), (c) => c.charCodeAt(0)));
	reader.id = d.readerID;
	const t0 = performance.now();
	const h = await keys.checkDataKey(await keys.openShare(reader, d.chain, d.share), d.dk);
	for (let i = 0; i < d.sealed.length; i++) {
		const v = await keys.openSealed(h, d.chain, d.device, i + 1, d.sealed[i]);
		if (v.value !== i) throw new Error('reading ' + i + ' opened as ' + v.value);
	}
	return performance.now() - t0;
})()`

// BenchmarkOpenSealed opens 100 sealed readings, with the reader's share
// of the data key, per suite: in Go (reading.Open, client.UnwrapDataKey:
// the CLI's --decrypt) and in Chromium (the explorer's keys.js). One op is
// 100 readings.
func BenchmarkOpenSealed(b *testing.B) {
	if shared.err != nil {
		b.Fatalf("setup: %v", shared.err)
	}
	for _, s := range []identity.Suite{identity.SuiteX25519, identity.SuiteP256, identity.SuiteHybrid} {
		sb := newSealedBatch(b, s, 100)
		sb.WebDH = true
		b.Run(fmt.Sprintf("suite=%v/go", s), func(b *testing.B) {
			for b.Loop() {
				k, err := client.UnwrapDataKey(sb.Chain, &sb.Share, sb.reader, &sb.DK)
				if err != nil {
					b.Fatal(err)
				}
				for i, r := range sb.readings {
					o, err := reading.Open(k, sb.Chain, r)
					if err != nil || *o.Value != float64(i) {
						b.Fatalf("reading %d: %v", i, err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("suite=%v/page", s), func(b *testing.B) {
			if shared.browser == nil {
				b.Skip("no Chromium")
			}
			ctx, cancel := chromedp.NewContext(shared.browser)
			defer cancel()
			ctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			data, err := json.Marshal(sb)
			if err != nil {
				b.Fatal(err)
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(explorer("/api"))); err != nil {
				b.Fatal(err)
			}
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(window.__bench = %s, true)`, data))); err != nil {
				b.Fatal(err)
			}
			var total float64
			for b.Loop() {
				ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](openInPage, chromedp.EvalAwaitPromise))
				if err != nil {
					b.Fatal(err)
				}
				total += ms
			}
			b.ReportMetric(total/float64(b.N), "page-ms/op")
		})
	}
}

// TestOpenSealedKnownAnswers: readings Go sealed to a data key of each
// suite, with the reader's share, open in the page to the values Go
// sealed — with the Diffie-Hellman in WebCrypto and in @noble alike.
func TestOpenSealedKnownAnswers(t *testing.T) {
	ctx := tab(t)
	show(t, ctx, explorer("/api"), "/api")
	for _, s := range []identity.Suite{identity.SuiteX25519, identity.SuiteP256, identity.SuiteHybrid} {
		sb := newSealedBatch(t, s, 3)
		for _, web := range []bool{true, false} {
			sb.WebDH = web
			data, err := json.Marshal(sb)
			if err != nil {
				t.Fatal(err)
			}
			get(t, ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(window.__bench = %s, true)`, data)))
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[float64](openInPage, chromedp.EvalAwaitPromise)); err != nil {
				t.Errorf("suite %v (WebCrypto DH %v): %v", s, web, err)
			}
		}
	}
	noScriptErrors(t, ctx)
}
