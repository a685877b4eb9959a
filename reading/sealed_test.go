package reading

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/identity"
)

const testChain = "thingnet-test"

func sameSealed(a, b *Sealed) bool {
	return a.Suite == b.Suite && a.Version == b.Version && bytes.Equal(a.Enc, b.Enc) &&
		bytes.Equal(a.Commit, b.Commit) && bytes.Equal(a.Ciphertext, b.Ciphertext)
}

// dataKey returns a data key pair: the private key and its public half of
// suite s, version v.
func dataKey(t testing.TB, s identity.Suite, v uint64, b byte) (*identity.Key, DataKey) {
	t.Helper()
	alg := identity.Ed25519
	if s == identity.SuiteP256 {
		alg = identity.P256
	}
	k := seededKey(t, alg, b)
	pub, err := k.HPKEPublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k, DataKey{Version: v, Suite: s, Key: pub}
}

func allSuites() []identity.Suite {
	return []identity.Suite{identity.SuiteX25519, identity.SuiteP256, identity.SuiteHybrid}
}

func mustSeal(t testing.TB, r Reading, device string, k DataKey) Reading {
	t.Helper()
	s, err := SealReading(r, testChain, device, k)
	if err != nil {
		t.Fatalf("SealReading() error = %v", err)
	}
	return s
}

func TestSealedRoundTrip(t *testing.T) {
	dev := seededKey(t, identity.Ed25519, 7)
	for _, suite := range allSuites() {
		t.Run(suite.String(), func(t *testing.T) {
			priv, pub := dataKey(t, suite, 3, 9)
			bin := Reading{Seq: 5, Time: testTime, ContentType: "image/png", Bytes: []byte("secret picture")}
			rs := []Reading{mustSeal(t, temp(4, -12.25), dev.ID(), pub), mustSeal(t, bin, dev.ID(), pub)}
			if rs[0].Value != nil || rs[0].Sealed == nil || len(rs[0].Sealed.Enc) != suite.EncSize() {
				t.Fatalf("sealed reading %+v", rs[0])
			}
			for _, env := range [][]byte{mustSign(t, dev, dev.ID(), rs[0]), mustSign(t, dev, dev.ID(), rs...)} {
				if bytes.Contains(env, []byte("secret picture")) {
					t.Fatal("the envelope holds the plaintext")
				}
				e := mustDecode(t, env)
				if err := e.Verify(dev.Public()); err != nil {
					t.Fatal(err)
				}
				for i, r := range e.Readings {
					if !sameReading(r, withDevice(rs[i], dev.ID())) {
						t.Fatalf("decoded %+v, sealed %+v", r, rs[i])
					}
					o, err := Open(priv, testChain, r)
					if err != nil {
						t.Fatalf("Open() error = %v", err)
					}
					want := []Reading{temp(4, -12.25), bin}[i]
					want.Device = dev.ID()
					if !sameReading(o, want) {
						t.Fatalf("opened %+v, want %+v", o, want)
					}
					secret, err := SealedSecret(priv, testChain, r)
					if err != nil {
						t.Fatal(err)
					}
					o2, err := OpenSealed(secret, testChain, r)
					if err != nil || !sameReading(o2, want) {
						t.Fatalf("OpenSealed() = %+v, %v", o2, err)
					}
				}
			}
		})
	}
}

func withDevice(r Reading, d string) Reading { r.Device = d; return r }

// TestSealedRefused: a sealed value opens only with its key, for its own
// chain, device, seq and key version, and only its secret opens it.
func TestSealedRefused(t *testing.T) {
	dev := seededKey(t, identity.Ed25519, 7)
	other := seededKey(t, identity.Ed25519, 8)
	priv, pub := dataKey(t, identity.SuiteX25519, 1, 9)
	wrong, _ := dataKey(t, identity.SuiteX25519, 1, 10)
	r := withDevice(mustSeal(t, temp(4, 21.5), dev.ID(), pub), dev.ID())
	if _, err := Open(wrong, testChain, r); !errors.Is(err, ErrSealed) {
		t.Fatalf("another organisation's key: %v", err)
	}
	moved := map[string]func(Reading) (Reading, string){
		"other chain":   func(r Reading) (Reading, string) { return r, "other-chain" },
		"other device":  func(r Reading) (Reading, string) { r.Device = other.ID(); return r, testChain },
		"other seq":     func(r Reading) (Reading, string) { r.Seq++; return r, testChain },
		"other version": func(r Reading) (Reading, string) { s := *r.Sealed; s.Version = 2; r.Sealed = &s; return r, testChain },
	}
	secret, err := SealedSecret(priv, testChain, r)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range moved {
		m, chain := f(r)
		if _, err := Open(priv, chain, m); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: Open() error = %v, want ErrSealed", name, err)
		}
		if _, err := OpenSealed(secret, chain, m); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: OpenSealed() error = %v, want ErrSealed", name, err)
		}
	}
	bad := bytes.Clone(secret)
	bad[0] ^= 1
	if _, err := OpenSealed(bad, testChain, r); !errors.Is(err, ErrSealed) {
		t.Fatalf("a wrong secret: %v", err)
	}
	// Another ciphertext under the same commitment does not open.
	s := *r.Sealed
	s.Ciphertext = bytes.Clone(s.Ciphertext)
	s.Ciphertext[0] ^= 1
	r2 := r
	r2.Sealed = &s
	if _, err := OpenSealed(secret, testChain, r2); !errors.Is(err, ErrSealed) {
		t.Fatalf("a changed ciphertext: %v", err)
	}
	if _, err := SealReading(r, testChain, dev.ID(), pub); !errors.Is(err, ErrInvalid) {
		t.Fatalf("sealing a sealed reading: %v", err)
	}
	if _, err := SealReading(temp(1, 1), testChain, dev.ID(), DataKey{Version: 1, Suite: identity.SuiteX25519, Key: []byte{1}}); err == nil {
		t.Fatal("sealing to a malformed key succeeded")
	}
}

// TestSealedDecodeStrict: the sealed map is decoded as strictly as the
// rest of the payload.
func TestSealedDecodeStrict(t *testing.T) {
	dev := seededKey(t, identity.Ed25519, 7)
	_, pub := dataKey(t, identity.SuiteX25519, 1, 9)
	r := mustSeal(t, temp(4, 21.5), dev.ID(), pub)
	s := r.Sealed
	item := func(sealed any, extra map[int]any) map[int]any {
		m := map[int]any{1: dev.ID(), 2: uint64(4), 3: uint64(testTime.UnixMilli()), 4: "temperature/celsius", 9: sealed}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	full := func() map[int]any {
		return map[int]any{1: uint64(s.Suite), 2: s.Version, 3: s.Enc, 4: s.Commit, 5: s.Ciphertext}
	}
	without := func(k int) map[int]any { m := full(); delete(m, k); return m }
	with := func(k int, v any) map[int]any { m := full(); m[k] = v; return m }
	cases := map[string]struct {
		payload map[int]any
		want    string
	}{
		"valid":            {item(full(), nil), ""},
		"and a value":      {item(full(), map[int]any{5: 1.5}), "2 of keys 5 (value), 6 (bytes) and 9 (sealed value) are present"},
		"and bytes":        {item(full(), map[int]any{6: []byte{}}), "are present"},
		"no suite":         {item(without(1), nil), "key 1 (suite) is missing"},
		"no version":       {item(without(2), nil), "key 2 (version) is missing"},
		"no enc":           {item(without(3), nil), "key 3 (enc) is missing"},
		"no commit":        {item(without(4), nil), "key 4 (commit) is missing"},
		"no ciphertext":    {item(without(5), nil), "key 5 (ciphertext) is missing"},
		"unknown key":      {item(with(6, 1), nil), "key 9 (sealed value): unknown key 6 (a sealed value holds keys 1 to 5)"},
		"suite 0":          {item(with(1, 0), nil), "not a known HPKE suite"},
		"suite 4":          {item(with(1, 4), nil), "not a known HPKE suite"},
		"suite 256":        {item(with(1, 256), nil), "not a known HPKE suite"},
		"version 0":        {item(with(2, 0), nil), "key 2 (version) is 0"},
		"short enc":        {item(with(3, s.Enc[:31]), nil), "key 3 (enc) is 31 bytes, want 32"},
		"hybrid enc short": {item(with(1, 3), nil), "want 1120"},
		"long commit":      {item(with(4, append(bytes.Clone(s.Commit), 0)), nil), "key 4 (commit) is 33 bytes"},
		"tiny ciphertext":  {item(with(5, make([]byte, 16)), nil), "key 5 (ciphertext) is 16 bytes"},
		"huge ciphertext":  {item(with(5, make([]byte, MaxCiphertext+1)), nil), "ciphertext) is"},
		"enc a string":     {item(with(3, "x"), nil), "is a UTF-8 text string, want a byte string"},
		"sealed an array":  {item([]any{1, 2}, nil), "key 9 (sealed value) is an array, want a map"},
		"sealed nested":    {item(with(5, []any{[]any{1}}), nil), ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(signPayload(t, dev, dev.ID(), encode(t, c.payload)))
			if c.want == "" && name == "valid" {
				if err != nil {
					t.Fatalf("Decode() error = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode() error = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Decode() error = %v, want it to say %q", err, c.want)
			}
		})
	}
	// Batch items carry key 9 too; beside key 7 it is refused.
	batch := map[int]any{1: dev.ID(), 7: []any{item(full(), nil)}, 9: full()}
	delete(batch[7].([]any)[0].(map[int]any), 1)
	if _, err := Decode(signPayload(t, dev, dev.ID(), encode(t, batch))); err == nil || !strings.Contains(err.Error(), "key 9 (sealed value) beside key 7") {
		t.Fatalf("key 9 beside a batch: %v", err)
	}
	delete(batch, 9)
	if _, err := Decode(signPayload(t, dev, dev.ID(), encode(t, batch))); err != nil {
		t.Fatalf("a batch of one sealed item: %v", err)
	}
}

// TestSealedPlaintext: what a sealed value may hold once opened.
func TestSealedPlaintext(t *testing.T) {
	for _, c := range []struct {
		hex string
		ok  bool
	}{
		{"f93e00", true},              // 1.5
		{"00", true},                  // 0
		{"3903e7", true},              // -1000
		{"40", true},                  // h''
		{"4401020304", true},          // bytes
		{"f97e00", false},             // NaN
		{"6161", false},               // a text string
		{"a0", false},                 // a map
		{"f5", false},                 // true
		{"f93e0000", false},           // trailing byte
		{"", false},                   // nothing
		{"1b0020000000000001", false}, // 2^53+1
		{"c11a514b67b0", false},       // a tag
	} {
		var r Reading
		pt, _ := hex.DecodeString(c.hex)
		err := decodePlaintext(pt, &r)
		if (err == nil) != c.ok {
			t.Errorf("plaintext %s: error %v, want ok %v", c.hex, err, c.ok)
		}
	}
}

var updateVectors = flag.Bool("update-vectors", false, "rewrite testdata/sealed-vectors.json")

// SealedVector is one test vector of a sealed reading (for other
// implementations: the explorer, C firmware): testdata/sealed-vectors.json.
type SealedVector struct {
	Comment     string `json:"comment"`
	ChainID     string `json:"chain_id"`
	Suite       uint8  `json:"suite"`
	DataKeySeed string `json:"data_key_seed"`         // the Ed25519 seed (x25519, hybrid) or P-256 scalar (p256) of the data key, hex
	DataKeyPriv string `json:"data_key_hpke_private"` // the suite's HPKE private key (RFC 9180 SerializePrivateKey), hex
	DataKeyPub  string `json:"data_key_public"`
	Version     uint64 `json:"version"`
	Device      string `json:"device"`
	Envelope    string `json:"envelope"` // the signed COSE_Sign1 reading envelope, hex
	Seq         uint64 `json:"seq"`
	Info        string `json:"info"`      // SealInfo, hex
	Secret      string `json:"secret"`    // the exported secret, hex
	Commit      string `json:"commit"`    // hex
	Plaintext   string `json:"plaintext"` // the CBOR value item, hex
	Value       any    `json:"value"`     // the number, or the bytes as hex
}

func TestSealedVectors(t *testing.T) {
	path := filepath.Join("testdata", "sealed-vectors.json")
	if *updateVectors {
		writeVectors(t, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []SealedVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 3 {
		t.Fatalf("%d vectors", len(vs))
	}
	for i, v := range vs {
		suite := identity.Suite(v.Suite)
		seed := unhex(t, v.DataKeySeed)
		priv, pub := dataKey(t, suite, v.Version, seed[0])
		hp, err := priv.HPKEPrivateKeyBytes(suite)
		if err != nil || hex.EncodeToString(pub.Key) != v.DataKeyPub || hex.EncodeToString(hp) != v.DataKeyPriv {
			t.Fatalf("vector %d: key pair differs (%v)", i, err)
		}
		e := mustDecode(t, unhex(t, v.Envelope))
		r := e.Readings[0]
		if e.Device != v.Device || r.Seq != v.Seq || r.Sealed == nil {
			t.Fatalf("vector %d: envelope of %s seq %d", i, e.Device, r.Seq)
		}
		if got := hex.EncodeToString(SealInfo(v.ChainID, v.Device, v.Seq, v.Version)); got != v.Info {
			t.Fatalf("vector %d: info %s, want %s", i, got, v.Info)
		}
		secret, err := SealedSecret(priv, v.ChainID, r)
		if err != nil || hex.EncodeToString(secret) != v.Secret || hex.EncodeToString(r.Sealed.Commit) != v.Commit {
			t.Fatalf("vector %d: secret %x, %v", i, secret, err)
		}
		o, err := OpenSealed(secret, v.ChainID, r)
		if err != nil {
			t.Fatal(err)
		}
		pt, _ := valuePlaintext(o)
		if hex.EncodeToString(pt) != v.Plaintext {
			t.Fatalf("vector %d: plaintext %x", i, pt)
		}
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sealedSeeds returns envelopes of sealed readings, of every suite, in
// both forms: fuzz seeds, also committed as corpus files under
// testdata/fuzz (written with -update-vectors).
func sealedSeeds(t testing.TB) [][]byte {
	dev := seededKey(t, identity.Ed25519, 7)
	var seeds [][]byte
	for i, suite := range allSuites() {
		_, pub := dataKey(t, suite, uint64(i+1), 9)
		a := mustSeal(t, temp(1, 21.5), dev.ID(), pub)
		b := mustSeal(t, Reading{Seq: 2, Time: testTime, ContentType: "image/png", Bytes: []byte{0x89, 'P', 'N', 'G'}}, dev.ID(), pub)
		seeds = append(seeds, mustSign(t, dev, dev.ID(), a), mustSign(t, dev, dev.ID(), a, b, temp(3, 1)))
	}
	return seeds
}

func writeCorpus(t *testing.T) {
	for i, s := range sealedSeeds(t) {
		for _, target := range []string{"FuzzDecode", "FuzzDecodePayload"} {
			in := s
			if target == "FuzzDecodePayload" {
				m, err := identity.DecodeSign1(s)
				if err != nil {
					t.Fatal(err)
				}
				in = m.Payload
			}
			path := filepath.Join("testdata", "fuzz", target, fmt.Sprintf("sealed-%d", i))
			if err := os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", in), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func writeVectors(t *testing.T, path string) {
	writeCorpus(t)
	dev := seededKey(t, identity.Ed25519, 7)
	var vs []SealedVector
	for i, suite := range allSuites() {
		priv, pub := dataKey(t, suite, uint64(i+1), 9)
		r := temp(uint64(10+i), 21.5)
		comment := "a temperature of 21.5"
		if i == 1 {
			r = Reading{Seq: 11, Time: testTime, ContentType: "application/octet-stream", Bytes: []byte("thingnet")}
			comment = `the bytes "thingnet"`
		}
		s := mustSeal(t, r, dev.ID(), pub)
		env := mustSign(t, dev, dev.ID(), s)
		secret, err := SealedSecret(priv, testChain, withDevice(s, dev.ID()))
		if err != nil {
			t.Fatal(err)
		}
		hp, err := priv.HPKEPrivateKeyBytes(suite)
		if err != nil {
			t.Fatal(err)
		}
		pt, _ := valuePlaintext(r)
		var value any = *fptrOr(r.Value)
		if r.Bytes != nil {
			value = hex.EncodeToString(r.Bytes)
		}
		vs = append(vs, SealedVector{
			Comment: comment + ", sealed with suite " + suite.String(), ChainID: testChain, Suite: uint8(suite),
			DataKeySeed: strings.Repeat("09", 32), DataKeyPriv: hex.EncodeToString(hp), DataKeyPub: hex.EncodeToString(pub.Key), Version: pub.Version,
			Device: dev.ID(), Envelope: hex.EncodeToString(env), Seq: r.Seq,
			Info: hex.EncodeToString(SealInfo(testChain, dev.ID(), r.Seq, pub.Version)), Secret: hex.EncodeToString(secret),
			Commit: hex.EncodeToString(s.Sealed.Commit), Plaintext: hex.EncodeToString(pt), Value: value,
		})
	}
	b, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fptrOr(v *float64) *float64 {
	if v == nil {
		return new(float64)
	}
	return v
}

// FuzzOpenSealed fuzzes the ciphertext and secret of a sealed value: the
// opening never panics, and only the sealed value comes out.
func FuzzOpenSealed(f *testing.F) {
	dev := seededKey(f, identity.Ed25519, 7)
	priv, pub := dataKey(f, identity.SuiteX25519, 1, 9)
	r := withDevice(mustSeal(f, temp(4, 21.5), dev.ID(), pub), dev.ID())
	secret, err := SealedSecret(priv, testChain, r)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(secret, r.Sealed.Ciphertext)
	f.Add(make([]byte, 32), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, key, ct []byte) {
		s := *r.Sealed
		s.Ciphertext = ct
		in := r
		in.Sealed = &s
		o, err := OpenSealed(key, testChain, in)
		if err != nil {
			if !errors.Is(err, ErrSealed) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("OpenSealed() error = %v", err)
			}
			return
		}
		if !bytes.Equal(key, secret) || o.Value == nil || *o.Value != 21.5 {
			t.Fatalf("opened %+v with key %x", o, key)
		}
	})
}

// FuzzDecodePlaintext fuzzes what an opened value may hold.
func FuzzDecodePlaintext(f *testing.F) {
	for _, s := range []string{"f93e00", "00", "4401020304", "f97e00", "a0", "1b0020000000000001"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, pt []byte) {
		var r Reading
		if err := decodePlaintext(pt, &r); err != nil {
			return
		}
		again, err := valuePlaintext(r)
		if err != nil {
			t.Fatalf("decoded value does not encode: %v", err)
		}
		var r2 Reading
		if err := decodePlaintext(again, &r2); err != nil || !sameReading(r, r2) {
			t.Fatalf("value changed: %+v then %+v (%v)", r, r2, err)
		}
	})
}

// BenchmarkDecodeSealed compares decoding a batch of plaintext and of
// sealed readings (what a gateway does before verifying).
func BenchmarkDecodeSealed(b *testing.B) {
	k := seededKey(b, identity.Ed25519, 3)
	_, pub := dataKey(b, identity.SuiteX25519, 1, 9)
	for _, sealed := range []bool{false, true} {
		rs := batchOf(1, 10)
		if sealed {
			for i := range rs {
				rs[i] = mustSeal(b, rs[i], k.ID(), pub)
			}
		}
		raw := mustSign(b, k, k.ID(), rs...)
		b.Run(fmt.Sprintf("sealed=%v", sealed), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(raw); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(raw)), "bytes")
		})
	}
}

// BenchmarkSeal measures what sealing costs a device per reading, and
// opening a reader, by suite.
func BenchmarkSeal(b *testing.B) {
	dev := seededKey(b, identity.Ed25519, 7)
	for _, suite := range allSuites() {
		priv, pub := dataKey(b, suite, 1, 9)
		r := temp(1, 21.5)
		b.Run("seal/"+suite.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := SealReading(r, testChain, dev.ID(), pub); err != nil {
					b.Fatal(err)
				}
			}
		})
		s := withDevice(mustSeal(b, r, dev.ID(), pub), dev.ID())
		b.Run("open/"+suite.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := Open(priv, testChain, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
