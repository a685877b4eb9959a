package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// batchCase is one signature to put in a batch.
type batchCase struct {
	name     string
	pub      PublicKey
	msg, sig []byte
}

// checkBatch verifies cases as one batch and checks that the result of each
// is that of PublicKey.Verify, and that those that should be valid are.
// It runs without a key cache, then twice with one (keys expanded, then
// reused), then with a cache of one key (forgetting all at every new key).
func checkBatch(t *testing.T, cases []batchCase, wantValid func(i int) bool) {
	t.Helper()
	keys := NewExpandedKeys(len(cases))
	for _, k := range []*ExpandedKeys{nil, keys, keys, NewExpandedKeys(1)} {
		checkBatchWith(t, NewBatchWithKeys(len(cases), k), cases, wantValid)
	}
}

func checkBatchWith(t *testing.T, b *Batch, cases []batchCase, wantValid func(i int) bool) {
	t.Helper()
	for _, c := range cases {
		b.Add(c.pub, c.msg, c.sig)
	}
	all, valid := b.Verify()
	if len(valid) != len(cases) {
		t.Fatalf("Verify() returned %d results for %d signatures", len(valid), len(cases))
	}
	wantAll := true
	for i, c := range cases {
		single := c.pub.Verify(c.msg, c.sig) == nil
		if valid[i] != single {
			t.Errorf("%s: batch valid = %v; Verify() valid = %v", c.name, valid[i], single)
		}
		if valid[i] != wantValid(i) {
			t.Errorf("%s: batch valid = %v; want %v", c.name, valid[i], wantValid(i))
		}
		wantAll = wantAll && single
	}
	if all != wantAll {
		t.Errorf("Verify() allValid = %v; want %v", all, wantAll)
	}
}

func TestBatch(t *testing.T) {
	var cases []batchCase
	for i := range 40 {
		alg := Ed25519
		if i%5 == 4 {
			alg = P256
		}
		k := mustKey(t, alg)
		msg := fmt.Appendf(nil, "message %d", i)
		sig, err := k.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, batchCase{fmt.Sprintf("%v #%d", alg, i), k.Public(), msg, sig})
	}
	checkBatch(t, cases, func(int) bool { return true })

	for _, bad := range []int{0, 17, 19, 39} { // ed25519 and p256
		t.Run(fmt.Sprintf("bad %d", bad), func(t *testing.T) {
			c := make([]batchCase, len(cases))
			copy(c, cases)
			c[bad].sig = bytes.Clone(c[bad].sig)
			c[bad].sig[3] ^= 1
			checkBatch(t, c, func(i int) bool { return i != bad })
		})
	}
}

func TestBatchEmpty(t *testing.T) {
	all, valid := NewBatch(0).Verify()
	if !all || len(valid) != 0 {
		t.Errorf("empty Verify() = %v, %v; want true, []", all, valid)
	}
	if all, valid := NewBatch(-1).Verify(); !all || len(valid) != 0 {
		t.Errorf("NewBatch(-1).Verify() = %v, %v; want true, []", all, valid)
	}
}

// checkBatchPath checks that cases, all valid Ed25519 signatures, pass
// voi's batch equation itself, not only its one-by-one fallback: Batch
// takes the fast path when every signature is valid. One tampered
// signature must make the equation fail.
func checkBatchPath(t *testing.T, cases []batchCase) {
	t.Helper()
	if len(cases) == 0 {
		t.Fatal("test is wrong: no cases")
	}
	b := NewBatch(len(cases))
	idx := make([]int, len(cases))
	for i, c := range cases {
		if c.pub.Verify(c.msg, c.sig) != nil || c.pub.Alg != Ed25519 {
			t.Fatalf("test is wrong: %s is not a valid Ed25519 signature", c.name)
		}
		b.Add(c.pub, c.msg, c.sig)
		idx[i] = i
	}
	if !b.ed25519Verifier(idx).VerifyBatchOnly(rand.Reader) {
		t.Errorf("batch equation of %d valid signatures fails", len(cases))
	}
	last := &b.entries[len(b.entries)-1]
	last.sig = bytes.Clone(last.sig)
	last.sig[32] ^= 1 // S ± 1: [8]([S±1]B - R - [k]A) = ±[8]B
	if b.ed25519Verifier(idx).VerifyBatchOnly(rand.Reader) {
		t.Errorf("batch equation holds with a tampered signature")
	}
}

// The batch agrees with Verify on adversarial Ed25519 input too.
func TestBatchAdversarial(t *testing.T) {
	msg := []byte("adversarial")
	validPub, validSig := craftEd25519(t, 1, nil, nil, msg)
	torsionRPub, torsionRSig := craftEd25519(t, 2, nil, edPoint(t, edOrder8), msg)
	identitySig := append(mustHex(t, edIdentity), make([]byte, 32)...)
	ed := func(b []byte) PublicKey { return PublicKey{Alg: Ed25519, Bytes: b} }
	tampered := bytes.Clone(torsionRSig)
	tampered[40] ^= 4
	cases := []batchCase{
		{"valid", ed(validPub), msg, validSig},
		{"torsion R", ed(torsionRPub), msg, torsionRSig},
		{"identity key", ed(mustHex(t, edIdentity)), msg, identitySig},
		{"non-canonical identity key", ed(mustHex(t, edIdentityNonCanonical)), msg, identitySig},
		{"tampered torsion R", ed(torsionRPub), msg, tampered},
		{"S + L", ed(validPub), msg, ed25519AddL(t, validSig)},
		{"not a point", ed(bytes.Repeat([]byte{0xff}, 32)), msg, validSig},
		{"short key", ed(validPub[:31]), msg, validSig},
		{"short signature", ed(validPub), msg, validSig[:63]},
		{"p256 key, ed25519 signature", PublicKey{Alg: P256, Bytes: append([]byte{2}, validPub...)}, msg, validSig},
		{"zero key", PublicKey{}, msg, validSig},
	}
	wantInvalid := 4 // from "tampered torsion R" on
	// Keys with a torsion component: crypto/ed25519 accepts such a
	// signature for some messages only, depending on H(R, A, M); ZIP-215
	// for all.
	stdValid := 0
	for i := range 8 {
		m := fmt.Appendf(nil, "mixed %d", i)
		pub, sig := craftEd25519(t, byte(10+i), edPoint(t, edOrder4), nil, m)
		cases = append(cases, batchCase{fmt.Sprintf("mixed-order key %d", i), ed(pub), m, sig})
		if ed25519.Verify(pub, m, sig) {
			stdValid++
		}
	}
	t.Logf("crypto/ed25519 accepts %d of 8 mixed-order key signatures", stdValid)
	wantValid := func(i int) bool { return i < wantInvalid || i >= wantInvalid+7 }
	checkBatch(t, cases, wantValid)
	var valid []batchCase
	for i, c := range cases {
		if wantValid(i) {
			valid = append(valid, c)
		}
	}
	checkBatchPath(t, valid)
}

// TestBatchRandom checks, on many random mixes of valid, invalid and crafted
// signatures, that Batch answers as Verify does for each, and that both
// give the answer expected under ZIP-215.
func TestBatchRandom(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(0x7468696e, 0x676e6574))
	cases, want := randomBatchCases(t, rng, 600)
	valid := 0
	for i, c := range cases {
		got := c.pub.Verify(c.msg, c.sig) == nil
		if got != want[i] {
			t.Errorf("%s: Verify() valid = %v; want %v", c.name, got, want[i])
		}
		if got {
			valid++
		}
	}
	t.Logf("%d cases, %d valid", len(cases), valid)
	if valid < len(cases)/4 || valid > len(cases)*3/4 {
		t.Fatalf("test is wrong: %d of %d cases valid", valid, len(cases))
	}

	// Mixed batches, of sizes around voi's thresholds.
	sizes := []int{1, 2, 3, 7, 31, 64, 93, 94, 130}
	for i, n := 0, 0; i < len(cases); i, n = i+sizes[n%len(sizes)], n+1 {
		end := min(i+sizes[n%len(sizes)], len(cases))
		part, pw := cases[i:end], want[i:end]
		checkBatch(t, part, func(j int) bool { return pw[j] })
	}

	// Batches of valid signatures only, crafted ones included, must pass
	// the batch equation: Batch does take its fast path.
	var ok []batchCase
	for i, c := range cases {
		if want[i] && c.pub.Alg == Ed25519 {
			ok = append(ok, c)
		}
	}
	rng.Shuffle(len(ok), func(i, j int) { ok[i], ok[j] = ok[j], ok[i] })
	for _, n := range []int{1, 5, 64, len(ok)} {
		checkBatch(t, ok[:n], func(int) bool { return true })
		checkBatchPath(t, ok[:n])
	}
}

// randomBatchCases returns n shuffled cases of many kinds and whether each
// is valid under ZIP-215.
func randomBatchCases(t *testing.T, rng *mrand.Rand, n int) ([]batchCase, []bool) {
	t.Helper()
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	randomScalar := func() *scalar.Scalar {
		s, err := scalar.NewFromBytesModOrderWide(random(64))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	torsion := func() *curve.EdwardsPoint { // one of the 8, canonical
		return edPoint(t, smallOrderEncodings[rng.IntN(8)].hex)
	}
	flip := func(b []byte) []byte {
		b = bytes.Clone(b)
		bit := rng.IntN(8 * len(b))
		b[bit/8] ^= 1 << (bit % 8)
		return b
	}
	ed := func(b []byte) PublicKey { return PublicKey{Alg: Ed25519, Bytes: b} }
	keys := []*Key{mustKey(t, Ed25519), mustKey(t, Ed25519), mustKey(t, P256)}

	var (
		cases []batchCase
		want  []bool
	)
	add := func(valid bool, name string, pub PublicKey, msg, sig []byte) {
		cases = append(cases, batchCase{fmt.Sprintf("#%d %s", len(cases), name), pub, msg, sig})
		want = append(want, valid)
	}
	for len(cases) < n {
		msg := fmt.Appendf(nil, "tx %d %x", len(cases), random(rng.IntN(40)))
		priv := ed25519.NewKeyFromSeed(random(ed25519.SeedSize))
		stdPub := priv.Public().(ed25519.PublicKey)
		stdSig := ed25519.Sign(priv, msg)
		switch kind := rng.IntN(12); kind {
		case 0:
			add(true, "crypto/ed25519", ed(stdPub), msg, stdSig)
		case 1:
			k := keys[rng.IntN(len(keys))]
			sig, err := k.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			add(true, "Key.Sign "+k.Alg().String(), k.Public(), msg, sig)
			switch rng.IntN(3) {
			case 0:
				add(false, "tampered Key.Sign "+k.Alg().String(), k.Public(), msg, flip(sig))
			case 1:
				add(false, "Key.Sign, tampered message "+k.Alg().String(), k.Public(), flip(msg), sig)
			}
		case 2:
			add(false, "tampered signature", ed(stdPub), msg, flip(stdSig))
		case 3:
			add(false, "tampered message", ed(stdPub), flip(msg), stdSig)
		case 4:
			add(false, "tampered key", ed(flip(stdPub)), msg, stdSig)
		case 5:
			add(false, "S + L", ed(stdPub), msg, ed25519AddL(t, stdSig))
		case 6, 7:
			// Torsion components in the key, R or both.
			var tA, tR *curve.EdwardsPoint
			if rng.IntN(3) != 0 {
				tA = torsion()
			}
			if tA == nil || rng.IntN(2) == 0 {
				tR = torsion()
			}
			pub, sig := craftEd25519(t, byte(rng.Uint32()), tA, tR, msg)
			if kind == 6 {
				add(true, "torsion", ed(pub), msg, sig)
			} else {
				add(false, "tampered torsion", ed(pub), msg, flip(sig))
			}
		case 8:
			// R of small order, in any encoding, honest key.
			a := ed25519Scalar(t, random(32))
			var A curve.EdwardsPoint
			A.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, a)
			e := smallOrderEncodings[rng.IntN(len(smallOrderEncodings))]
			sig := signEd25519Raw(t, a, new(scalar.Scalar), edBytes(&A), mustHex(t, e.hex), msg)
			add(true, "R = "+e.name, ed(edBytes(&A)), msg, sig)
		case 9:
			// Key of small order, in any encoding: a forgery.
			r := randomScalar()
			var R curve.EdwardsPoint
			R.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, r)
			sig := append(edBytes(&R), make([]byte, 32)...)
			if err := r.ToBytes(sig[32:]); err != nil {
				t.Fatal(err)
			}
			e := smallOrderEncodings[rng.IntN(len(smallOrderEncodings))]
			add(true, "key = "+e.name, ed(mustHex(t, e.hex)), msg, sig)
		case 10:
			// Garbage of the right sizes: S reduced half the time.
			sig := random(64)
			if rng.IntN(2) == 0 {
				sig[63] &= 0x0f
			}
			add(false, "random", ed(random(32)), msg, sig)
		case 11:
			// Malformed: handled outside voi.
			switch rng.IntN(3) {
			case 0:
				add(false, "short signature", ed(stdPub), msg, stdSig[:63])
			case 1:
				add(false, "long key", ed(append(bytes.Clone(stdPub), 0)), msg, stdSig)
			default:
				add(false, "p256 key", PublicKey{Alg: P256, Bytes: append([]byte{3}, stdPub...)}, msg, stdSig)
			}
		}
	}
	perm := rng.Perm(len(cases))
	outC, outW := make([]batchCase, len(cases)), make([]bool, len(cases))
	for i, j := range perm {
		outC[i], outW[i] = cases[j], want[j]
	}
	return outC, outW
}
