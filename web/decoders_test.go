package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
)

// TestPageDecodersRefuse feeds the page's decoders of outside bytes
// (keys.js: key files, sealed values, sealed plaintexts) a seeded set of
// mutated inputs, as a fuzz target would: each must be refused with the
// decoder's own error (KeyFileError, SealedError) — never another
// exception — and a sealed value changed anywhere never opens.
func TestPageDecodersRefuse(t *testing.T) {
	ctx := tab(t)
	rng := rand.New(rand.NewPCG(16, 2))
	flip := func(b []byte) []byte {
		c := append([]byte(nil), b...)
		c[rng.IntN(len(c))] ^= byte(1 + rng.IntN(255))
		return c
	}

	// Sealed values: one field changed, or cut.
	sb := newSealedBatch(t, identity.SuiteX25519, 1)
	var sealed []*reading.Sealed
	for i := range 60 {
		s := *sb.Sealed[0]
		switch i % 6 {
		case 0:
			s.Enc = flip(s.Enc)
		case 1:
			s.Commit = flip(s.Commit)
		case 2:
			s.Ciphertext = flip(s.Ciphertext)
		case 3:
			s.Ciphertext = s.Ciphertext[:rng.IntN(len(s.Ciphertext))]
		case 4:
			s.Version = 1 + uint64(rng.IntN(1<<20))
		case 5:
			s.Suite = identity.Suite(2 + rng.IntN(3))
		}
		sealed = append(sealed, &s)
	}
	// Plaintexts: random bytes, and CBOR heads of every major type.
	var plain [][]byte
	for range 200 {
		b := make([]byte, 1+rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		plain = append(plain, b)
	}
	// Key files: a byte of the JSON changed, or a field's value replaced.
	file := string(keyFile(t, shared.admin, "admin", "pw"))
	var files []string
	for i := range 40 {
		if i%2 == 0 {
			files = append(files, string(flip([]byte(file))))
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(file), &m); err != nil {
			t.Fatal(err)
		}
		keys := []string{"version", "name", "alg", "id", "kdf", "kdfparams", "cipher", "nonce", "ciphertext"}
		vals := []any{nil, 0, -1, 1 << 40, "", "AAAA", "🙂", []any{}, map[string]any{"n": 1 << 30, "r": 8, "p": 1}, map[string]any{"n": 1024, "r": 1 << 20, "p": 1}}
		m[keys[rng.IntN(len(keys))]] = vals[rng.IntN(len(vals))]
		b, _ := json.Marshal(m)
		files = append(files, string(b))
	}
	in, err := json.Marshal(map[string]any{"batch": sb, "sealed": sealed, "plain": plain, "files": files})
	if err != nil {
		t.Fatal(err)
	}
	show(t, ctx, explorer("/api"), "/api")
	js := fmt.Sprintf(`(async () => {
		const keys = await import('./keys.js');
		const d = %s, b = d.batch, out = [];
		const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
		const reader = await keys.privateKey(bytes(b.reader));
		reader.id = b.readerID;
		const h = await keys.checkDataKey(await keys.openShare(reader, b.chain, b.share), b.dk);
		const ok = await keys.openSealed(h, b.chain, b.device, 1, b.sealed[0]);
		if (ok.value !== 0) out.push('the genuine value opened as ' + JSON.stringify(ok));
		for (const [i, s] of d.sealed.entries()) {
			try { out.push('sealed ' + i + ' opened: ' + JSON.stringify(await keys.openSealed(h, b.chain, b.device, 1, s))); }
			catch (e) { if (!(e instanceof keys.SealedError)) out.push('sealed ' + i + ': ' + e); }
		}
		for (const [i, p] of d.plain.entries()) {
			try { keys.plaintextValue(bytes(p)); } catch (e) { if (!(e instanceof keys.SealedError)) out.push('plaintext ' + i + ': ' + e); }
		}
		for (const [i, f] of d.files.entries()) {
			try { await keys.openKeyFile(keys.parseKeyFile(f), 'pw'); } catch (e) { if (!(e instanceof keys.KeyFileError)) out.push('key file ' + i + ': ' + e + ' in ' + f); }
		}
		return out;
	})()`, in)
	problems(t, ctx, "the page's decoders let through or failed on", js)
}

// problems runs js, an async function's call that returns a list of
// problems, in the page, and reports them under what.
func problems(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("%s:\n%s", what, strings.Join(bad, "\n"))
	}
}
