package identity

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeCWTPassword checks the text form of a token: whatever decodes
// is the one encoding of its bytes (strict base64url, no padding), so no
// two passwords stand for one token.
func FuzzDecodeCWTPassword(f *testing.F) {
	for _, s := range []string{"", "AA", "AAA", "AAAA", "AB==", "a-_b", "a+/b", "YQ\n", "QUJD", "QUJDRA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeCWTPassword(s)
		if err != nil {
			return
		}
		if again := EncodeCWTPassword(b); again != s {
			t.Fatalf("%q decodes to % x, which encodes as %q", s, b, again)
		}
	})
}

// FuzzKeyFile loads arbitrary key files: a file that is not a key file of
// this keystore's format, or does not decrypt with the passphrase, is
// refused with an error; one that loads holds a key that signs.
func FuzzKeyFile(f *testing.F) {
	ks := Keystore{Dir: filepath.Join(f.TempDir(), "keys"), ScryptN: 1024}
	pass := []byte("passphrase")
	for _, alg := range allAlgs() {
		k, err := GenerateKey(alg)
		if err != nil {
			f.Fatal(err)
		}
		info, err := ks.Save(alg.String(), k, pass)
		if err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(info.Path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		for _, n := range []string{`"n":1024`, `"n": 1024`} { // a costlier scrypt
			if bytes.Contains(b, []byte(n)) {
				f.Add(bytes.Replace(b, []byte(n), []byte(`"n":1048576`), 1))
			}
		}
	}
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`[]`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "k.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadKeyFile(path, pass)
		if err != nil {
			if k != nil {
				t.Fatalf("LoadKeyFile returned a key and the error %v", err)
			}
			return
		}
		msg := []byte("fuzz")
		sig, err := k.Sign(msg)
		if err != nil {
			t.Fatalf("a loaded key does not sign: %v", err)
		}
		if err := k.Public().Verify(msg, sig); err != nil {
			t.Fatalf("a loaded key's signature does not verify: %v", err)
		}
	})
}
