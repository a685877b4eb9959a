package identity

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func cborHead(major byte, arg uint64) []byte { return AppendCBORHead(nil, major, arg) }
func cborBytes(b []byte) []byte              { return appendBytes(nil, b) }
func cborInt(v int64) []byte                 { return appendInt(nil, v) }
func cborText(s string) []byte               { return append(cborHead(majorText, uint64(len(s))), s...) }

// rawSign1 encodes a COSE_Sign1 message from encoded parts.
func rawSign1(protected []byte, unprotected, payload, sig []byte) []byte {
	return cat([]byte{0xd2, 0x84}, cborBytes(protected), unprotected, payload, sig)
}

// encodeSign1 re-encodes a decoded message in the canonical form.
func encodeSign1(m *Sign1) []byte {
	return rawSign1(m.protected, []byte{0xa0}, cborBytes(m.Payload), cborBytes(m.Signature))
}

func TestCOSERoundTrip(t *testing.T) {
	for _, alg := range allAlgs() {
		t.Run(alg.String(), func(t *testing.T) {
			k := mustKey(t, alg)
			payloads := [][]byte{nil, {}, []byte("temperature=21.5"), bytes.Repeat([]byte{0xa5}, 70000)}
			for _, payload := range payloads {
				external := []byte("chain-id:thingnet-1")
				b, err := SignCOSE(k, k.ID(), payload, external)
				if err != nil {
					t.Fatalf("SignCOSE() error = %v", err)
				}
				m, err := DecodeSign1(b)
				if err != nil {
					t.Fatalf("DecodeSign1() error = %v", err)
				}
				if m.Alg != alg || m.KID != k.ID() || !bytes.Equal(m.Payload, payload) || len(m.Signature) != 64 {
					t.Fatalf("DecodeSign1() = %v %q %d bytes; want %v %q %d bytes", m.Alg, m.KID, len(m.Payload), alg, k.ID(), len(payload))
				}
				if err := m.Verify(k.Public(), external); err != nil {
					t.Fatalf("Verify() error = %v", err)
				}
				if !bytes.Equal(encodeSign1(m), b) {
					t.Fatalf("re-encoding differs from SignCOSE output")
				}
				// Untagged is accepted too.
				mu, err := DecodeSign1(b[1:])
				if err != nil {
					t.Fatalf("DecodeSign1(untagged) error = %v", err)
				}
				if err := mu.Verify(k.Public(), external); err != nil {
					t.Fatalf("Verify(untagged) error = %v", err)
				}
			}
		})
	}
}

func TestCOSEVerifyFails(t *testing.T) {
	for _, alg := range allAlgs() {
		t.Run(alg.String(), func(t *testing.T) {
			k := mustKey(t, alg)
			external := []byte("ext")
			b, err := SignCOSE(k, "account-1", []byte("payload"), external)
			if err != nil {
				t.Fatal(err)
			}
			m, err := DecodeSign1(b)
			if err != nil {
				t.Fatal(err)
			}
			ptOff := bytes.Index(b, []byte("payload"))
			kidOff := bytes.Index(b, []byte("account-1"))
			sigOff := len(b) - 64
			flip := func(off int) []byte {
				c := bytes.Clone(b)
				c[off] ^= 1
				return c
			}
			otherAlg := P256
			if alg == P256 {
				otherAlg = Ed25519
			}
			tests := []struct {
				name     string
				msg      []byte
				pub      PublicKey
				external []byte
			}{
				{"tampered payload", flip(ptOff), k.Public(), external},
				{"tampered protected header", flip(kidOff), k.Public(), external},
				{"tampered signature", flip(sigOff + 5), k.Public(), external},
				{"other external data", b, k.Public(), []byte("exu")},
				{"no external data", b, k.Public(), nil},
				{"other key", b, mustKey(t, alg).Public(), external},
				{"key of other alg", b, mustKey(t, otherAlg).Public(), external},
			}
			for _, tt := range tests {
				m, err := DecodeSign1(tt.msg)
				if err != nil {
					t.Fatalf("%s: DecodeSign1() error = %v", tt.name, err)
				}
				if err := m.Verify(tt.pub, tt.external); !errors.Is(err, ErrBadSignature) {
					t.Errorf("%s: Verify() error = %v; want ErrBadSignature", tt.name, err)
				}
			}

			// Changing the alg in the protected header: the signature
			// covers it, so it fails even with a key of the claimed alg.
			forged := *m
			forged.Alg = otherAlg
			if err := forged.Verify(mustKey(t, otherAlg).Public(), external); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify() with changed alg error = %v; want ErrBadSignature", err)
			}
		})
	}
}

// The messages must be standard COSE_Sign1, in both directions.
func TestCOSEInteropGoCOSE(t *testing.T) {
	coseAlg := map[Algorithm]cose.Algorithm{Ed25519: cose.AlgorithmEdDSA, P256: cose.AlgorithmES256}
	for _, alg := range allAlgs() {
		t.Run(alg.String(), func(t *testing.T) {
			k := mustKey(t, alg)
			payload, external := []byte("interop payload"), []byte("interop external")

			// Ours, verified by go-cose.
			b, err := SignCOSE(k, k.ID(), payload, external)
			if err != nil {
				t.Fatal(err)
			}
			verifier, err := cose.NewVerifier(coseAlg[alg], k.Public().CryptoPublicKey())
			if err != nil {
				t.Fatal(err)
			}
			var msg cose.Sign1Message
			if err := msg.UnmarshalCBOR(b); err != nil {
				t.Fatalf("go-cose UnmarshalCBOR() error = %v", err)
			}
			if err := msg.Verify(external, verifier); err != nil {
				t.Fatalf("go-cose Verify() error = %v", err)
			}
			if kid, _ := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte); string(kid) != k.ID() {
				t.Errorf("go-cose kid = %q; want %q", kid, k.ID())
			}
			if err := msg.Verify([]byte("other"), verifier); err == nil {
				t.Errorf("go-cose Verify() with other external data succeeded")
			}

			// go-cose's, verified by us.
			signer, err := cose.NewSigner(coseAlg[alg], k.Signer())
			if err != nil {
				t.Fatal(err)
			}
			gm := cose.NewSign1Message()
			gm.Headers.Protected.SetAlgorithm(coseAlg[alg])
			gm.Headers.Protected[cose.HeaderLabelKeyID] = []byte(k.ID())
			gm.Payload = payload
			if err := gm.Sign(rand.Reader, external, signer); err != nil {
				t.Fatal(err)
			}
			gb, err := gm.MarshalCBOR()
			if err != nil {
				t.Fatal(err)
			}
			m, err := DecodeSign1(gb)
			if err != nil {
				t.Fatalf("DecodeSign1(go-cose message) error = %v", err)
			}
			if err := m.Verify(k.Public(), external); err != nil {
				t.Fatalf("Verify(go-cose message) error = %v", err)
			}
			if m.KID != k.ID() || !bytes.Equal(m.Payload, payload) {
				t.Errorf("DecodeSign1(go-cose message) = %q, %q", m.KID, m.Payload)
			}
		})
	}
}

func TestToBeSigned(t *testing.T) {
	k := mustKey(t, Ed25519)
	b, err := SignCOSE(k, "kid", []byte("p"), []byte("e"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeSign1(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.ToBeSigned([]byte("e"))
	if err != nil {
		t.Fatal(err)
	}
	// ["Signature1", h'A2 01 27 04 43 6B6964', h'65', h'70']
	want := mustHex(t, "846a5369676e61747572653148a201270443"+"6b6964"+"4165"+"4170")
	if !bytes.Equal(got, want) {
		t.Errorf("ToBeSigned() = %x; want %x", got, want)
	}
	// A Sign1 built by hand gets the same protected header.
	hand := &Sign1{Alg: Ed25519, KID: "kid", Payload: []byte("p"), Signature: m.Signature}
	if got2, err := hand.ToBeSigned([]byte("e")); err != nil || !bytes.Equal(got2, want) {
		t.Errorf("ToBeSigned() of a hand-built Sign1 = %x, %v; want %x", got2, err, want)
	}
	if err := hand.Verify(k.Public(), []byte("e")); err != nil {
		t.Errorf("Verify() of a hand-built Sign1 error = %v", err)
	}
	if _, err := (&Sign1{Alg: Ed25519}).ToBeSigned(nil); err == nil {
		t.Errorf("ToBeSigned() of a Sign1 without kid succeeded")
	}
}

func TestSignCOSEArguments(t *testing.T) {
	k := mustKey(t, Ed25519)
	tests := []struct {
		name    string
		k       *Key
		kid     string
		payload []byte
	}{
		{"nil key", nil, "kid", nil},
		{"empty kid", k, "", nil},
		{"long kid", k, strings.Repeat("k", 257), nil},
		{"kid not UTF-8", k, "\xff", nil},
		{"payload too big", k, "kid", make([]byte, MaxSign1Size)},
	}
	for _, tt := range tests {
		if b, err := SignCOSE(tt.k, tt.kid, tt.payload, nil); err == nil {
			t.Errorf("%s: SignCOSE() = %x; want an error", tt.name, b)
		}
	}
	if _, err := SignCOSE(k, strings.Repeat("k", 256), nil, nil); err != nil {
		t.Errorf("SignCOSE() with a 256-byte kid error = %v", err)
	}
}

func TestDecodeSign1Malformed(t *testing.T) {
	sig := cborBytes(make([]byte, 64))
	payload := cborBytes([]byte("p"))
	empty := []byte{0xa0}
	hdr := func(entries ...[]byte) []byte {
		return cat(cborHead(majorMap, uint64(len(entries)/2)), cat(entries...))
	}
	alg, kid := cborInt(headerAlg), cborInt(headerKID)
	algEd, kidVal := cborInt(int64(Ed25519)), cborBytes([]byte("kid"))
	good := hdr(alg, algEd, kid, kidVal)
	valid := rawSign1(good, empty, payload, sig)
	if _, err := DecodeSign1(valid); err != nil {
		t.Fatalf("test is wrong: DecodeSign1(valid) error = %v", err)
	}
	many := [][]byte{alg, algEd, kid, kidVal}
	for i := range 15 {
		many = append(many, cborInt(int64(100+i)), cborInt(0))
	}

	tests := []struct {
		name string
		in   []byte
		want string // in the error message
	}{
		{"empty", nil, "not an array"},
		{"too big", make([]byte, MaxSign1Size+1), "more than"},
		{"map", cat([]byte{0xa0}), "not an array"},
		{"array of 3", cat([]byte{0x83}, cborBytes(good), empty, payload), "array of 3"},
		{"array of 5", cat([]byte{0x85}, cborBytes(good), empty, payload, sig, sig), "array of 5"},
		{"tag 98", cat([]byte{0xd8, 0x62}, valid[1:]), "tag 98"},
		{"tag 17", cat([]byte{0xd1}, valid[1:]), "tag 17"},
		{"tag 18 not shortest", cat([]byte{0xd8, 0x12}, valid[1:]), "shortest"},
		{"indefinite array", cat([]byte{0xd2, 0x9f}, cborBytes(good), empty, payload, sig, []byte{0xff}), "indefinite"},
		{"array length not shortest", cat([]byte{0xd2, 0x98, 0x04}, cborBytes(good), empty, payload, sig), "shortest"},
		{"protected not a bstr", cat([]byte{0xd2, 0x84}, good, empty, payload, sig), "protected header is not a byte string"},
		{"protected length not shortest", cat([]byte{0xd2, 0x84, 0x58, byte(len(good))}, good, empty, payload, sig), "shortest"},
		{"unprotected not a map", rawSign1(good, []byte{0x80}, payload, sig), "unprotected header is not a map"},
		{"unprotected kid", rawSign1(good, hdr(kid, kidVal), payload, sig), "unprotected header has 1 entries"},
		{"payload nil", rawSign1(good, empty, []byte{0xf6}, sig), "detached"},
		{"payload text", rawSign1(good, empty, cborText("p"), sig), "payload is not a byte string"},
		{"payload length not shortest", rawSign1(good, empty, []byte{0x58, 0x01, 'p'}, sig), "shortest"},
		{"payload indefinite", rawSign1(good, empty, []byte{0x5f, 0x41, 'p', 0xff}, sig), "indefinite"},
		{"payload truncated", rawSign1(good, empty, []byte{0x45, 'p'}, nil), "end of data"},
		{"signature 63 bytes", rawSign1(good, empty, payload, cborBytes(make([]byte, 63))), "signature is 63 bytes"},
		{"signature 65 bytes", rawSign1(good, empty, payload, cborBytes(make([]byte, 65))), "signature is 65 bytes"},
		{"signature missing", rawSign1(good, empty, payload, nil), "end of data"},
		{"trailing byte", cat(valid, []byte{0}), "1 bytes after the message"},
		{"protected empty", rawSign1(nil, empty, payload, sig), "protected header is not a map"},
		{"protected not a map", rawSign1(cborInt(1), empty, payload, sig), "protected header is not a map"},
		{"protected trailing data", rawSign1(cat(good, []byte{0}), empty, payload, sig), "after the protected header map"},
		{"protected truncated", rawSign1(good[:len(good)-1], empty, payload, sig), "end of data"},
		{"no alg", rawSign1(hdr(kid, kidVal), empty, payload, sig), "protected header has no alg"},
		{"no kid", rawSign1(hdr(alg, algEd), empty, payload, sig), "protected header has no kid"},
		{"alg ES384", rawSign1(hdr(alg, cborInt(-35), kid, kidVal), empty, payload, sig), "unsupported alg -35"},
		{"alg as text", rawSign1(hdr(alg, cborText("EdDSA"), kid, kidVal), empty, payload, sig), "alg"},
		{"alg huge", rawSign1(hdr(alg, cborHead(majorNegInt, 1<<63), kid, kidVal), empty, payload, sig), "out of range"},
		{"kid empty", rawSign1(hdr(alg, algEd, kid, cborBytes(nil)), empty, payload, sig), "kid is 0 bytes"},
		{"kid too long", rawSign1(hdr(alg, algEd, kid, cborBytes(make([]byte, 257))), empty, payload, sig), "kid is 257 bytes"},
		{"kid not UTF-8", rawSign1(hdr(alg, algEd, kid, cborBytes([]byte{0xff})), empty, payload, sig), "UTF-8"},
		{"kid as text", rawSign1(hdr(alg, algEd, kid, cborText("kid")), empty, payload, sig), "kid"},
		{"duplicate alg", rawSign1(hdr(alg, algEd, kid, kidVal, alg, algEd), empty, payload, sig), "duplicate"},
		{"duplicate text label", rawSign1(hdr(alg, algEd, kid, kidVal, cborText("x"), cborInt(1), cborText("x"), cborInt(2)), empty, payload, sig), "duplicate"},
		{"label is a bstr", rawSign1(hdr(alg, algEd, kid, kidVal, cborBytes([]byte("x")), cborInt(1)), empty, payload, sig), "label is byte string"},
		{"unknown critical header", rawSign1(hdr(alg, algEd, cborInt(headerCrit), cat([]byte{0x81}, cborInt(99)), kid, kidVal, cborInt(99), cborInt(0)), empty, payload, sig), "unknown critical header 99"},
		{"critical text label", rawSign1(hdr(alg, algEd, cborInt(headerCrit), cat([]byte{0x81}, cborText("x")), kid, kidVal, cborText("x"), cborInt(0)), empty, payload, sig), "unknown critical header"},
		{"empty crit", rawSign1(hdr(alg, algEd, cborInt(headerCrit), []byte{0x80}, kid, kidVal), empty, payload, sig), "crit has 0 labels"},
		{"crit not an array", rawSign1(hdr(alg, algEd, cborInt(headerCrit), cborInt(1), kid, kidVal), empty, payload, sig), "crit is not an array"},
		{"too many header entries", rawSign1(hdr(many...), empty, payload, sig), "more than 16"},
		{"unknown header indefinite", rawSign1(hdr(alg, algEd, kid, kidVal, cborInt(3), []byte{0x7f, 0xff}), empty, payload, sig), "indefinite"},
		{"unknown header bad UTF-8", rawSign1(hdr(alg, algEd, kid, kidVal, cborInt(3), []byte{0x61, 0xff}), empty, payload, sig), "UTF-8"},
		{"unknown header reserved ai", rawSign1(hdr(alg, algEd, kid, kidVal, cborInt(3), []byte{0x1c}), empty, payload, sig), "reserved"},
		{"unknown header simple in two bytes", rawSign1(hdr(alg, algEd, kid, kidVal, cborInt(3), []byte{0xf8, 0x14}), empty, payload, sig), "simple value"},
		{"unknown header huge array", rawSign1(hdr(alg, algEd, kid, kidVal, cborInt(3), []byte{0x9b, 0x7f, 0, 0, 0, 0, 0, 0, 0}), empty, payload, sig), "end of data"},
		{"unknown header huge map", rawSign1(hdr(alg, algEd, kid, kidVal, cborInt(3), []byte{0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), empty, payload, sig), "end of data"},
		{"unknown header nested too deep", rawSign1(hdr(alg, algEd, kid, kidVal, cborInt(3), cat(bytes.Repeat([]byte{0x81}, 20), []byte{0})), empty, payload, sig), "nested"},
	}
	for _, tt := range tests {
		m, err := DecodeSign1(tt.in)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: DecodeSign1(%x) = %v, error = %v; want ErrMalformed", tt.name, tt.in, m, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: DecodeSign1() error = %q; want it to mention %q", tt.name, err, tt.want)
		}
	}

	accepted := []struct {
		name string
		in   []byte
	}{
		{"untagged", valid[1:]},
		{"labels in another order", rawSign1(hdr(kid, kidVal, alg, algEd), empty, payload, sig)},
		{"crit naming alg and kid", rawSign1(hdr(alg, algEd, cborInt(headerCrit), cat([]byte{0x82}, alg, kid), kid, kidVal), empty, payload, sig)},
		{"unknown non-critical headers", rawSign1(hdr(alg, algEd, cborInt(3), cborText("application/cbor"), kid, kidVal, cborText("x"), cat([]byte{0xc1, 0xa1}, cborInt(1), []byte{0xf9, 0x3c, 0x00})), empty, payload, sig)},
		{"empty payload", rawSign1(good, empty, cborBytes(nil), sig)},
		{"16 header entries", rawSign1(hdr(many[:32]...), empty, payload, sig)},
	}
	for _, tt := range accepted {
		if _, err := DecodeSign1(tt.in); err != nil {
			t.Errorf("%s: DecodeSign1() error = %v; want nil", tt.name, err)
		}
	}
}

// DecodeSign1's result must not change when the input does.
func TestDecodeSign1Copies(t *testing.T) {
	k := mustKey(t, Ed25519)
	b, err := SignCOSE(k, k.ID(), []byte("payload"), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeSign1(b)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	if err := m.Verify(k.Public(), nil); err != nil {
		t.Errorf("Verify() after the input was cleared error = %v", err)
	}
	// Appending to the payload must not overwrite the signature.
	_ = append(m.Payload, bytes.Repeat([]byte{0}, 64)...)
	if err := m.Verify(k.Public(), nil); err != nil {
		t.Errorf("Verify() after appending to Payload error = %v", err)
	}
}

func FuzzDecodeSign1(f *testing.F) {
	for _, alg := range allAlgs() {
		k := mustKey(f, alg)
		for _, payload := range [][]byte{nil, []byte("fuzz payload")} {
			b, err := SignCOSE(k, k.ID(), payload, nil)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			f.Add(b[1:])
			for _, n := range []int{0, 1, 2, 5, len(b) / 2, len(b) - 65, len(b) - 1} {
				f.Add(b[:n])
			}
		}
	}
	f.Add([]byte{0xd2, 0x84, 0x47, 0xa2, 0x01, 0x27, 0x04, 0x42, 'k', 'k', 0xa0, 0x40, 0x58, 0x40})
	f.Add([]byte{0x84, 0x43, 0xa1, 0x02, 0x80, 0xa0, 0xf6, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeSign1(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeSign1(%x) error = %v; want ErrMalformed", b, err)
			}
			return
		}
		// What is accepted is well-formed CBOR...
		if err := cbor.Wellformed(b); err != nil {
			t.Fatalf("DecodeSign1(%x) accepted CBOR that fxamacker/cbor finds malformed: %v", b, err)
		}
		// ...in its one encoding, but for the optional tag.
		if re := encodeSign1(m); !bytes.Equal(re, b) && !bytes.Equal(re[1:], b) {
			t.Fatalf("DecodeSign1(%x) accepted a non-canonical encoding of %x", b, re)
		}
		if _, err := m.ToBeSigned(nil); err != nil {
			t.Fatalf("ToBeSigned() error = %v", err)
		}
		if err := m.Verify(PublicKey{Alg: m.Alg, Bytes: make([]byte, 33)}, nil); err == nil {
			t.Fatalf("Verify() with a bogus key succeeded")
		}
	})
}
