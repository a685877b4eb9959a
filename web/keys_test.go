package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// keyFile saves k in a fresh keystore under passphrase, as `thingnet key
// new` does (a cheaper scrypt cost), and returns the file.
func keyFile(t *testing.T, k *identity.Key, name, passphrase string) []byte {
	t.Helper()
	info, err := identity.Keystore{Dir: t.TempDir(), ScryptN: 1 << 12}.Save(name, k, []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signInWithFile drops a key file on the sign-in page (open at
// explorer/query#/signin), types the passphrase and submits: it returns
// "" once signed in as id, or the page's error.
func signInWithFile(t *testing.T, ctx context.Context, query string, file []byte, passphrase, id string) string {
	t.Helper()
	show(t, ctx, shared.url+"/explorer/"+query+"#/signin", "/signin")
	js := fmt.Sprintf(`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([%s], 'key.json', { type: 'application/json' }));
		document.querySelector('#signin-drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
		document.querySelector('#signin-pass').value = %s;
		document.querySelector('#signin-state').dataset.before = '1'; // the page re-renders once signed in
		document.querySelector('#keyfile-form button').click();
		return true;
	})()`, jsString(string(file)), jsString(passphrase))
	get(t, ctx, chromedp.Evaluate[bool](js))
	done := fmt.Sprintf(`document.querySelector('#signin-error')?.textContent.startsWith('not signed in') ||
		(document.querySelector('#view').dataset.path === '/signin' && document.querySelector('#signin-state')?.dataset.before === undefined &&
		document.querySelector('#signin-state').textContent.includes(%s))`, jsString(id))
	if err := poll(ctx, done, 20*time.Second); err != nil {
		t.Fatalf("sign in with a key file: %v (page: %q, errors: %q)", err, get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#view').innerText`)),
			get(t, ctx, chromedp.Evaluate[[]string](`window.__errors`)))
	}
	return get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#signin-error')?.textContent || ''`))
}

// TestKeyFileSignIn signs in with key files, Ed25519 and P-256, decrypted
// in the page: a wrong passphrase is refused; the token the page mints is
// the one the node checks (the admin sees the readings, a stranger is
// refused as itself); the key is never stored; the token is renewed while
// the page is open; signing out forgets it.
func TestKeyFileSignIn(t *testing.T) {
	ctx := tab(t)
	frag := "/device/" + shared.dev.ID()
	admin := keyFile(t, shared.admin, "admin", "correct horse")

	if got := signInWithFile(t, ctx, "", admin, "wrong horse", shared.admin.ID()); !strings.Contains(got, `wrong passphrase for key "admin"`) {
		t.Fatalf("wrong passphrase: %q", got)
	}
	if got := signInWithFile(t, ctx, "", []byte(`{"version":1,"name":"x","alg":"ed25519","id":"`+shared.admin.ID()+`","kdf":"scrypt","kdfparams":{"n":1073741824,"r":8,"p":1,"salt":"AAAAAAAAAAAAAAAAAAAAAA=="},"cipher":"xchacha20-poly1305","nonce":"","ciphertext":""}`), "", shared.admin.ID()); !strings.Contains(got, "scrypt n 1073741824 is not a power of two from 1024 to 1048576") {
		t.Errorf("a key file asking for 1 TiB of scrypt: %q", got)
	}
	if got := signInWithFile(t, ctx, "", []byte("not json"), "", shared.admin.ID()); !strings.Contains(got, "not a thingnet key file") {
		t.Errorf("a corrupt key file: %q", got)
	}

	// A P-256 key of no organisation: signed in as itself (the node
	// checks its token, and refuses it the readings by name).
	p256 := testutil.Key(t, identity.P256)
	if got := signInWithFile(t, ctx, "", keyFile(t, p256, "p", "pw"), "pw", p256.ID()); got != "" {
		t.Fatalf("P-256 key file: %q", got)
	}
	show(t, ctx, explorer(frag), frag)
	if private := textOf(t, ctx, `#readings-private`); !strings.Contains(private, p256.ID()+" may not read") {
		t.Errorf("device page as a P-256 stranger: %q; want a refusal naming it", private)
	}

	// The admin, with a token of 4 s renewed in the page.
	if got := signInWithFile(t, ctx, "?token-lifetime=4", admin, "correct horse", shared.admin.ID()); got != "" {
		t.Fatalf("admin key file: %q", got)
	}
	first := get(t, ctx, chromedp.Evaluate[string](`sessionStorage.getItem('thingnet.token')`))
	show(t, ctx, shared.url+"/explorer/?token-lifetime=4#"+frag, frag)
	if rows, points := count(t, ctx, `#readings tbody tr`), count(t, ctx, `#chart circle`); rows != readings || points != readings {
		t.Fatalf("device page signed in with a key file: %d rows, %d points; want %d (%q)", rows, points, readings, textOf(t, ctx, `#view`))
	}
	// Nothing but the token is stored.
	if stored := get(t, ctx, chromedp.Evaluate[string](`JSON.stringify([Object.keys(sessionStorage), Object.keys(localStorage)])`)); stored != `[["thingnet.token"],[]]` {
		t.Errorf("storage holds %s; want the token only", stored)
	}
	js := fmt.Sprintf(`(() => { const t = sessionStorage.getItem('thingnet.token'); return t !== null && t !== %s && document.querySelector('#who').textContent.startsWith('signed in as'); })()`, jsString(first))
	if err := poll(ctx, js, 15*time.Second); err != nil {
		t.Fatalf("the token was not renewed: %v", err)
	}
	renewed := get(t, ctx, chromedp.Evaluate[string](`sessionStorage.getItem('thingnet.token')`))
	raw, err := identity.DecodeCWTPassword(renewed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.VerifyCWT(raw, shared.admin.Public(), shared.d.ChainID(), time.Now(), 2*time.Second); err != nil {
		t.Errorf("the renewed token does not check: %v", err)
	}
	// A browser whose clock is 15 minutes fast: the page mints on the
	// node's clock (its Date header), so the node takes the token.
	if got := signInWithFile(t, ctx, "?clock-skew=900", admin, "correct horse", shared.admin.ID()); got != "" {
		t.Fatalf("admin key file, clock 15 min fast: %q", got)
	}
	show(t, ctx, shared.url+"/explorer/?clock-skew=900#"+frag, frag)
	if rows := count(t, ctx, `#readings tbody tr`); rows != readings {
		t.Errorf("device page signed in with a clock 15 min fast: %d rows; want %d (%q)", rows, readings, textOf(t, ctx, `#view`))
	}
	show(t, ctx, shared.url+"/explorer/?token-lifetime=4#/signin", "/signin")
	do(t, ctx, chromedp.Click(`#signout`))
	if err := poll(ctx, `sessionStorage.length === 0 && document.querySelector('#who').textContent === 'sign in'`, 10*time.Second); err != nil {
		t.Errorf("sign out: %v", err)
	}
	noScriptErrors(t, ctx)
}

// sealedOrg is an organisation with a device whose readings are sealed to
// data keys of the three suites (versions 1, 2, 3), and a grantee holding
// a read grant and shares of the three versions.
type sealedOrg struct {
	id       string
	admin    *identity.Key
	dev      *identity.Key
	dataKeys []*identity.Key // by version - 1
	reader   *identity.Key
	values   map[uint64]float64 // seq → the value sealed
}

// newSealedOrg sets it up and posts the readings: seq 1, 2, 3 sealed with
// suites 1, 2, 3; seq 4 sealed (version 1) for another seq and moved; seq
// 5 (version 1) with a ciphertext byte changed before the device signed.
func newSealedOrg(t *testing.T) *sealedOrg {
	t.Helper()
	o := &sealedOrg{id: fmt.Sprintf("sealed-%d", time.Now().UnixNano()), admin: testutil.Key(t, identity.Ed25519),
		dev: testutil.Key(t, identity.Ed25519), reader: testutil.Key(t, identity.Ed25519), values: map[uint64]float64{}}
	chain := shared.d.ChainID()
	send(t, o.admin, &record.OrgCreate{ID: o.id})
	proof, err := o.dev.Sign(record.PossessionMessage(chain, o.id, o.dev.ID()))
	if err != nil {
		t.Fatal(err)
	}
	send(t, o.admin, &record.DeviceRegister{Org: o.id, Device: o.dev.ID(), Class: "sensor", Firmware: "1.0.0", Proof: proof})
	// The grantee reads as the admin of its own organisation, which holds
	// the read grant.
	send(t, o.reader, &record.OrgCreate{ID: o.id + "-reader"})
	send(t, o.admin, &record.GrantAdd{Grantor: "org:" + o.id, Subject: "org:" + o.id + "-reader", Action: "read", Resource: "device:" + o.dev.ID() + "/readings"})
	pubs := map[identity.Suite][]byte{}
	for _, s := range []identity.Suite{identity.SuiteX25519, identity.SuiteP256, identity.SuiteHybrid} {
		alg := identity.Ed25519
		if s == identity.SuiteP256 {
			alg = identity.P256
		}
		dk := testutil.Key(t, alg)
		pub, err := dk.HPKEPublicKey(s)
		if err != nil {
			t.Fatal(err)
		}
		send(t, o.admin, &record.OrgDataKey{Org: o.id, Suite: uint8(s), Key: pub})
		o.dataKeys = append(o.dataKeys, dk)
		pubs[s] = pub
		sh, err := client.WrapDataKey(chain, o.id, uint64(s), o.reader.ID(), dk)
		if err != nil {
			t.Fatal(err)
		}
		send(t, o.admin, sh)
	}
	now := time.Now().Add(-time.Minute)
	for _, c := range []struct {
		seq, sealAs uint64
		suite       identity.Suite
		tamper      bool
	}{{1, 1, 1, false}, {2, 2, 2, false}, {3, 3, 3, false}, {4, 99, 1, false}, {5, 5, 1, true}} {
		v := 10 + float64(c.seq)*1.25
		r, err := reading.SealReading(reading.Reading{Seq: c.sealAs, Time: now.Add(time.Duration(c.seq) * time.Second), ContentType: "temperature/celsius", Value: &v},
			chain, o.dev.ID(), reading.DataKey{Version: uint64(c.suite), Suite: c.suite, Key: pubs[c.suite]})
		if err != nil {
			t.Fatal(err)
		}
		r.Seq = c.seq
		if c.tamper {
			r.Sealed.Ciphertext[0] ^= 1
		}
		o.values[c.seq] = v
		raw, err := reading.Sign(o.dev, o.dev.ID(), r)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.Post(shared.url+"/v1/readings", "application/cose", strings.NewReader(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("POST sealed reading %d: %s", c.seq, res.Status)
		}
	}
	return o
}

// sealedCells waits until the device page lists the five readings, and
// returns each one's value cell by seq.
func sealedCells(t *testing.T, ctx context.Context, o *sealedOrg) map[string]string {
	t.Helper()
	frag := "/device/" + o.dev.ID()
	testutil.WaitFor(t, testutil.Context(t, 30*time.Second), "the five sealed readings on the device page", func() bool {
		show(t, ctx, explorer(frag), frag)
		return count(t, ctx, `#readings tbody tr`) == 5
	})
	return get(t, ctx, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll('#readings tbody tr')].map((tr) => [tr.cells[1].textContent, tr.cells[4].textContent.trim()]))`))
}

// TestSealedReadings opens sealed readings in the page: an admin signed in
// with a token sees them sealed; with the data key file of version 1
// loaded, the X25519 ones open and the moved and the altered ones are
// refused with the reason; a grantee signed in with its key file opens
// the three suites (X25519, P-256, ML-KEM-768+X25519) from its shares. The
// values are the ones Go sealed (reading.SealReading).
func TestSealedReadings(t *testing.T) {
	ctx := longTab(t)
	o := newSealedOrg(t)
	want := func(v float64) string { return fmt.Sprint(v) + " sealed" }
	const moved, altered = "sealed value refused: not sealed to this key (version 1), or to another chain or reading", "sealed value refused: the ciphertext does not open for this chain, device, seq and version"

	signIn(t, ctx, o.admin)
	cells := sealedCells(t, ctx, o)
	for seq, c := range cells {
		if c != "sealed" {
			t.Errorf("without a data key, reading %s shows %q; want sealed", seq, c)
		}
	}
	if n := count(t, ctx, `#chart circle`); n != 0 {
		t.Errorf("without a data key the chart has %d points", n)
	}

	// The admin loads the data key of version 1 (X25519).
	show(t, ctx, explorer("/signin"), "/signin")
	js := fmt.Sprintf(`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([%s], 'data.json'));
		document.querySelector('#datakey-file').files = dt.files;
		document.querySelector('#datakey-pass').value = 'data';
		document.querySelector('#datakey-form button').click();
		return true;
	})()`, jsString(string(keyFile(t, o.dataKeys[0], o.id+".data.1", "data"))))
	get(t, ctx, chromedp.Evaluate[bool](js))
	if err := poll(ctx, `document.querySelector('#datakeys li') !== null || document.querySelector('#datakey-error')?.textContent.startsWith('data key not loaded')`, 20*time.Second); err != nil {
		t.Fatalf("loading the data key: %v", err)
	}
	if e := textOf(t, ctx, `#datakeys`); !strings.Contains(e, o.id+".data.1") {
		t.Fatalf("data key not loaded: %q", textOf(t, ctx, `#datakey-error`))
	}
	cells = sealedCells(t, ctx, o)
	for seq, w := range map[string]string{"1": want(o.values[1]), "2": "sealed", "3": "sealed", "4": moved, "5": altered} {
		if cells[seq] != w {
			t.Errorf("with data key version 1, reading %s shows %q; want %q", seq, cells[seq], w)
		}
	}
	if n := count(t, ctx, `#chart circle`); n != 1 {
		t.Errorf("with data key version 1 the chart has %d points, want 1", n)
	}
	screenshot(t, ctx, "sealed-datakey")

	// The grantee, with its key file: the shares open every suite.
	if got := signInWithFile(t, ctx, "", keyFile(t, o.reader, "reader", "pw"), "pw", o.reader.ID()); got != "" {
		t.Fatalf("grantee key file: %q", got)
	}
	cells = sealedCells(t, ctx, o)
	for seq, w := range map[string]string{"1": want(o.values[1]), "2": want(o.values[2]), "3": want(o.values[3]), "4": moved, "5": altered} {
		if cells[seq] != w {
			t.Errorf("as the grantee, reading %s shows %q; want %q", seq, cells[seq], w)
		}
	}
	if n := count(t, ctx, `#chart circle`); n != 3 {
		t.Errorf("as the grantee the chart has %d points, want 3", n)
	}
	noScriptErrors(t, ctx)
	screenshot(t, ctx, "sealed-grantee")
}
