package identity

import (
	"bytes"
	"fmt"
	"testing"
)

// batchCase is one signature to put in a batch.
type batchCase struct {
	name     string
	pub      PublicKey
	msg, sig []byte
}

// checkBatch verifies cases as one batch and checks that the result of each
// is that of PublicKey.Verify, and that those that should be valid are.
func checkBatch(t *testing.T, cases []batchCase, wantValid func(i int) bool) {
	t.Helper()
	b := NewBatch(len(cases))
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

// The batch must agree with Verify on adversarial Ed25519 input too, where
// a cofactored batch equation would not.
func TestBatchAdversarial(t *testing.T) {
	msg := []byte("adversarial")
	validPub, validSig := craftEd25519(t, 1, nil, nil, msg)
	torsionRPub, torsionRSig := craftEd25519(t, 2, nil, edPoint(t, edOrder8), msg)
	identitySig := append(mustHex(t, edIdentity), make([]byte, 32)...)
	ed := func(b []byte) PublicKey { return PublicKey{Alg: Ed25519, Bytes: b} }
	cases := []batchCase{
		{"valid", ed(validPub), msg, validSig},
		{"torsion R", ed(torsionRPub), msg, torsionRSig},
		{"identity key", ed(mustHex(t, edIdentity)), msg, identitySig},
		{"non-canonical identity key", ed(mustHex(t, edIdentityNonCanonical)), msg, identitySig},
		{"short key", ed(validPub[:31]), msg, validSig},
		{"short signature", ed(validPub), msg, validSig[:63]},
		{"p256 key, ed25519 signature", PublicKey{Alg: P256, Bytes: append([]byte{2}, validPub...)}, msg, validSig},
		{"zero key", PublicKey{}, msg, validSig},
	}
	// Keys with a torsion component: crypto/ed25519 accepts the signature
	// for some messages only, depending on H(R, A, M).
	for i := range 8 {
		m := fmt.Appendf(nil, "mixed %d", i)
		pub, sig := craftEd25519(t, byte(10+i), edPoint(t, edOrder4), nil, m)
		cases = append(cases, batchCase{fmt.Sprintf("mixed-order key %d", i), ed(pub), m, sig})
	}
	wantValid := func(i int) bool {
		c := cases[i]
		return c.pub.Verify(c.msg, c.sig) == nil
	}
	checkBatch(t, cases, wantValid)
	if wantValid(1) || !wantValid(0) || !wantValid(2) {
		t.Errorf("test is wrong: want valid, torsion R invalid, identity key valid")
	}
	mixedValid := 0
	for i := 8; i < len(cases); i++ {
		if wantValid(i) {
			mixedValid++
		}
	}
	t.Logf("%d of 8 mixed-order key signatures valid", mixedValid)
}
