package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testKeystore returns a keystore in a new directory, with a cheap scrypt.
func testKeystore(t *testing.T) Keystore {
	t.Helper()
	return Keystore{Dir: filepath.Join(t.TempDir(), "keys"), ScryptN: 1024}
}

func TestKeystoreSaveLoad(t *testing.T) {
	ks := testKeystore(t)
	for _, alg := range allAlgs() {
		for _, pass := range [][]byte{[]byte("correct horse battery staple"), nil} {
			k := mustKey(t, alg)
			name := alg.String() + "-" + string(rune('a'+len(pass)%26))
			info, err := ks.Save(name, k, pass)
			if err != nil {
				t.Fatalf("Save(%s) error = %v", name, err)
			}
			want := KeyInfo{Name: name, Alg: alg, ID: k.ID(), Path: filepath.Join(ks.Dir, name+".json")}
			if info != want {
				t.Errorf("Save(%s) = %+v; want %+v", name, info, want)
			}
			got, err := ks.Load(name, pass)
			if err != nil {
				t.Fatalf("Load(%s) error = %v", name, err)
			}
			if got.ID() != k.ID() || got.Alg() != alg {
				t.Errorf("Load(%s) = %s; want %s", name, got.ID(), k.ID())
			}
			msg := []byte("signed after load")
			sig, err := got.Sign(msg)
			if err != nil || k.Public().Verify(msg, sig) != nil {
				t.Errorf("loaded key does not sign as the saved one: %v", err)
			}
			if got, err := LoadKeyFile(info.Path, pass); err != nil || got.ID() != k.ID() {
				t.Errorf("LoadKeyFile(%s) = %v, %v", info.Path, got, err)
			}
			if got, err := ks.Info(name); err != nil || got != want {
				t.Errorf("Info(%s) = %+v, %v; want %+v", name, got, err, want)
			}
		}
	}
}

func TestKeystoreFormat(t *testing.T) {
	ks := testKeystore(t)
	k := mustKey(t, Ed25519)
	info, err := ks.Save("node", k, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"version": 1.0, "name": "node", "alg": "ed25519", "id": k.ID(),
		"kdf": "scrypt", "cipher": "xchacha20-poly1305",
	}
	for key, v := range want {
		if f[key] != v {
			t.Errorf("key file %s = %v; want %v", key, f[key], v)
		}
	}
	p, _ := f["kdfparams"].(map[string]any)
	if p["n"] != 1024.0 || p["r"] != 8.0 || p["p"] != 1.0 || len(p["salt"].(string)) != 24 {
		t.Errorf("key file kdfparams = %v", p)
	}
	if len(f["nonce"].(string)) != 32 {
		t.Errorf("key file nonce = %v; want 24 bytes of base64", f["nonce"])
	}
	if bytes.Contains(data, k.Signer().(interface{ Seed() []byte }).Seed()) {
		t.Errorf("key file holds the seed in the clear")
	}
}

func TestKeystorePermissions(t *testing.T) {
	ks := testKeystore(t)
	info, err := ks.Save("perm", mustKey(t, Ed25519), nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %v; want 0600", got)
	}
	di, err := os.Stat(ks.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("keystore dir mode = %v; want 0700", got)
	}
	entries, err := os.ReadDir(ks.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("keystore dir holds %d files; want 1 (no temporary files left)", len(entries))
	}
}

func TestKeystoreErrors(t *testing.T) {
	ks := testKeystore(t)
	k := mustKey(t, P256)
	if _, err := ks.Save("dev", k, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	opaque, err := FromSigner(opaqueSigner{s: k.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		do      func() error
		wantErr error
	}{
		{"wrong passphrase", func() error { _, err := ks.Load("dev", []byte("pW")); return err }, ErrWrongPassphrase},
		{"empty passphrase", func() error { _, err := ks.Load("dev", nil); return err }, ErrWrongPassphrase},
		{"missing", func() error { _, err := ks.Load("nope", []byte("pw")); return err }, ErrKeyNotFound},
		{"missing info", func() error { _, err := ks.Info("nope"); return err }, ErrKeyNotFound},
		{"missing file", func() error { _, err := LoadKeyFile(filepath.Join(ks.Dir, "x.json"), nil); return err }, ErrKeyNotFound},
		{"exists", func() error { _, err := ks.Save("dev", mustKey(t, Ed25519), nil); return err }, ErrKeyExists},
		{"opaque key", func() error { _, err := ks.Save("opaque", opaque, nil); return err }, ErrNotExportable},
		{"nil key", func() error { _, err := ks.Save("nil", nil, nil); return err }, ErrInvalidKey},
	}
	for _, tt := range tests {
		if err := tt.do(); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error = %v; want %v", tt.name, err, tt.wantErr)
		}
	}
	if got, err := ks.Load("dev", []byte("pw")); err != nil || got.ID() != k.ID() {
		t.Errorf("Load() after a refused Save = %v, %v; want the original key", got, err)
	}
	if _, err := (Keystore{}).List(); err == nil {
		t.Errorf("List() of a keystore without a directory succeeded")
	}
	if _, err := (Keystore{Dir: ks.Dir, ScryptN: 1000}).Save("weak", k, nil); err == nil {
		t.Errorf("Save() with scrypt n = 1000 succeeded")
	}
}

func TestKeystoreNames(t *testing.T) {
	ks := testKeystore(t)
	k := mustKey(t, Ed25519)
	for _, name := range []string{"a", "node-1", "Node_2.backup", strings.Repeat("x", 64), "..", "."} {
		if _, err := ks.Save(name, k, nil); err != nil {
			t.Errorf("Save(%q) error = %v", name, err)
		}
	}
	for _, name := range []string{"", strings.Repeat("x", 65), "a/b", "../up", "a b", "ключ", "a\x00", "a\\b"} {
		if _, err := ks.Save(name, k, nil); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Save(%q) error = %v; want ErrInvalidName", name, err)
		}
		if _, err := ks.Load(name, nil); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Load(%q) error = %v; want ErrInvalidName", name, err)
		}
	}
}

func TestKeystoreList(t *testing.T) {
	ks := testKeystore(t)
	if infos, err := ks.List(); err != nil || len(infos) != 0 {
		t.Errorf("List() of a missing directory = %v, %v; want none", infos, err)
	}
	var want []string
	for _, name := range []string{"zeta", "alpha", "mid"} {
		if _, err := ks.Save(name, mustKey(t, Ed25519), nil); err != nil {
			t.Fatal(err)
		}
	}
	want = []string{"alpha", "mid", "zeta"}
	junk := map[string]string{
		"README.txt":         "not a key",
		"broken.json":        "{",
		"other.json":         `{"hello": "world"}`,
		".hidden.json.tmp-1": "x",
		"bad name.json":      "{}",
	}
	for name, data := range junk {
		if err := os.WriteFile(filepath.Join(ks.Dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(ks.Dir, "dir.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	infos, err := ks.List()
	if err != nil {
		t.Fatalf("List() error = %v", err)
	}
	var got []string
	for _, info := range infos {
		got = append(got, info.Name)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("List() = %v; want %v", got, want)
	}
}

// Key files that were edited must be refused before any key derivation.
func TestKeystoreTamperedFile(t *testing.T) {
	ks := testKeystore(t)
	k := mustKey(t, Ed25519)
	info, err := ks.Save("dev", k, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	other := mustKey(t, Ed25519)
	p256 := mustKey(t, P256)
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(orig, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	params := func(m map[string]any) map[string]any { return m["kdfparams"].(map[string]any) }
	tests := []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{"other id", edit(func(m map[string]any) { m["id"] = other.ID() }), ErrWrongPassphrase},
		{"id of other alg", edit(func(m map[string]any) { m["id"] = p256.ID() }), ErrInvalidKeyFile},
		{"bad id", edit(func(m map[string]any) { m["id"] = "did:key:zzz" }), ErrInvalidKeyFile},
		{"other name", edit(func(m map[string]any) { m["name"] = "other" }), ErrInvalidKeyFile},
		{"version 2", edit(func(m map[string]any) { m["version"] = 2 }), ErrInvalidKeyFile},
		{"alg ES256", edit(func(m map[string]any) { m["alg"] = "es256" }), ErrInvalidKeyFile},
		{"kdf pbkdf2", edit(func(m map[string]any) { m["kdf"] = "pbkdf2" }), ErrInvalidKeyFile},
		{"huge n", edit(func(m map[string]any) { params(m)["n"] = 1 << 30 }), ErrInvalidKeyFile},
		{"n not a power of two", edit(func(m map[string]any) { params(m)["n"] = 3000 }), ErrInvalidKeyFile},
		{"huge r", edit(func(m map[string]any) { params(m)["r"] = 1 << 20 }), ErrInvalidKeyFile},
		{"huge p", edit(func(m map[string]any) { params(m)["p"] = 1 << 20 }), ErrInvalidKeyFile},
		{"short salt", edit(func(m map[string]any) { params(m)["salt"] = "AAAA" }), ErrInvalidKeyFile},
		{"cipher aes", edit(func(m map[string]any) { m["cipher"] = "aes-256-gcm" }), ErrInvalidKeyFile},
		{"short nonce", edit(func(m map[string]any) { m["nonce"] = "AAAA" }), ErrInvalidKeyFile},
		{"empty ciphertext", edit(func(m map[string]any) { m["ciphertext"] = "" }), ErrInvalidKeyFile},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = 1 }), ErrInvalidKeyFile},
		{"trailing data", append(bytes.Clone(orig), "{}"...), ErrInvalidKeyFile},
		{"too big", append(bytes.Clone(orig), bytes.Repeat([]byte(" "), 70<<10)...), ErrInvalidKeyFile},
		{"not JSON", []byte("\x00\x01"), ErrInvalidKeyFile},
	}
	for _, tt := range tests {
		if err := os.WriteFile(info.Path, tt.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ks.Load("dev", []byte("pw")); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: Load() error = %v; want %v", tt.name, err, tt.wantErr)
		}
	}
}

// Two concurrent Saves of one name: one wins, the other gets ErrKeyExists.
func TestKeystoreConcurrentSave(t *testing.T) {
	ks := testKeystore(t)
	if err := os.MkdirAll(ks.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	keys := []*Key{mustKey(t, Ed25519), mustKey(t, Ed25519), mustKey(t, Ed25519), mustKey(t, Ed25519)}
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() { _, errs[i] = ks.Save("race", k, nil) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner == -1:
			winner = i
		case err == nil:
			t.Errorf("Save() succeeded twice")
		case !errors.Is(err, ErrKeyExists):
			t.Errorf("Save() error = %v; want nil or ErrKeyExists", err)
		}
	}
	if winner == -1 {
		t.Fatalf("no Save() succeeded")
	}
	got, err := ks.Load("race", nil)
	if err != nil || got.ID() != keys[winner].ID() {
		t.Errorf("Load() = %v, %v; want the winner's key", got, err)
	}
}
