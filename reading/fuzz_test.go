package reading

import (
	"bytes"
	"errors"
	"testing"

	"github.com/thingnet/thingnet/identity"
)

// fuzzSeeds returns valid envelopes of both algorithms and forms, and some
// malformed ones.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, alg := range allAlgs() {
		k := seededKey(t, alg, 7)
		seeds = append(seeds,
			mustSign(t, k, k.ID(), temp(1, 21.5)),
			mustSign(t, k, k.ID(), Reading{Seq: 2, Time: testTime, ContentType: "image/png", Bytes: []byte{0x89, 'P', 'N', 'G'}}),
			mustSign(t, k, k.ID(), batchOf(3, 4)...),
		)
		att, err := SignAttested(k, k.ID(), seededKey(t, identity.Ed25519, 8).ID(), batchOf(1, 2)...)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, att)
	}
	seeds = append(seeds, sealedSeeds(t)...)
	k := seededKey(t, identity.Ed25519, 7)
	seeds = append(seeds,
		signPayload(t, k, k.ID(), mustHex(t, "a2026161026161")),
		signPayload(t, k, k.ID(), mustHex(t, hexSingle(k.ID(), "f97e00"))),
		signPayload(t, k, k.ID(), encode(t, batchPayload(k.ID()))),
	)
	return seeds
}

// checkEnvelope checks the invariants of a decoded envelope.
func checkEnvelope(t *testing.T, raw []byte, e *Envelope) {
	t.Helper()
	if len(raw) > MaxEnvelopeSize || !bytes.Equal(e.Raw, raw) {
		t.Fatalf("Raw is %d bytes and differs from the input", len(e.Raw))
	}
	if e.Signer() != e.Sign1.KID || checkID(e.Device) != nil || e.Device == e.Attester {
		t.Fatalf("Device %q Attester %q KID %q", e.Device, e.Attester, e.Sign1.KID)
	}
	if n := len(e.Readings); n < 1 || n > MaxBatch || !e.Batch && n != 1 {
		t.Fatalf("%d readings, batch %v", n, e.Batch)
	}
	for i, r := range e.Readings {
		if _, err := encodeReading(r, e.Device); err != nil {
			t.Fatalf("reading %d does not encode: %v", i, err)
		}
		if i > 0 && r.Seq <= e.Readings[i-1].Seq {
			t.Fatalf("reading %d: seq %d after %d", i, r.Seq, e.Readings[i-1].Seq)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	k := seededKey(f, identity.Ed25519, 7)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := Decode(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode() error = %v; want ErrMalformed", err)
			}
			if e != nil {
				t.Fatal("Decode() returned an envelope with an error")
			}
			return
		}
		checkEnvelope(t, raw, e)
		_ = e.Verify(k.Public()) // must not panic
	})
}

// FuzzDecodePayload fuzzes the payload inside a well-formed COSE_Sign1
// message (Decode does not verify, so the signature is left as zeros), and
// checks that whatever decodes encodes again to the same readings.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		m, err := identity.DecodeSign1(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Payload)
	}
	k := seededKey(f, identity.Ed25519, 7)
	f.Fuzz(func(t *testing.T, payload []byte) {
		raw, err := identity.SignCOSE(k, k.ID(), payload, []byte(ExternalAAD))
		if err != nil {
			return // too large
		}
		e, err := Decode(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode() error = %v; want ErrMalformed", err)
			}
			return
		}
		checkEnvelope(t, raw, e)
		if err := e.Verify(k.Public()); err != nil {
			t.Fatalf("Verify() error = %v", err)
		}
		var again []byte
		if e.Attester != "" {
			again, err = SignAttested(k, e.Attester, e.Device, e.Readings...)
		} else {
			again, err = Sign(k, e.Device, e.Readings...)
		}
		if err != nil {
			t.Fatalf("decoded readings do not sign again: %v", err)
		}
		e2 := mustDecode(t, again)
		if len(e2.Readings) != len(e.Readings) || e2.Device != e.Device || e2.Attester != e.Attester {
			t.Fatalf("re-signed envelope differs: %+v, then %+v", e, e2)
		}
		for i := range e.Readings {
			if !sameReading(e.Readings[i], e2.Readings[i]) {
				t.Fatalf("reading %d changed: %+v, then %+v", i, e.Readings[i], e2.Readings[i])
			}
		}
		// A batch of one re-signs in the single form; otherwise the form stays.
		if e2.Batch != (len(e.Readings) > 1) {
			t.Fatalf("re-signed batch %v for %d readings", e2.Batch, len(e.Readings))
		}
	})
}
