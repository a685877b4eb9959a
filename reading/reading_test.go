package reading

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
)

// sameReading reports whether two readings are equal.
func sameReading(a, b Reading) bool {
	if a.Device != b.Device || a.Seq != b.Seq || !a.Time.Equal(b.Time) || a.ContentType != b.ContentType {
		return false
	}
	if (a.Value == nil) != (b.Value == nil) || (a.Bytes == nil) != (b.Bytes == nil) {
		return false
	}
	if a.Value != nil && math.Float64bits(*a.Value) != math.Float64bits(*b.Value) {
		return false
	}
	if (a.Sealed == nil) != (b.Sealed == nil) || a.Sealed != nil && !sameSealed(a.Sealed, b.Sealed) {
		return false
	}
	return bytes.Equal(a.Bytes, b.Bytes)
}

func TestRoundTrip(t *testing.T) {
	for _, alg := range allAlgs() {
		t.Run(alg.String(), func(t *testing.T) {
			k := testutil.Key(t, alg)
			id := k.ID()
			tests := []struct {
				name string
				rs   []Reading
			}{
				{"single value", []Reading{temp(1, 21.5)}},
				{"float32 value", []Reading{temp(2, 0.15625)}},
				{"float64 value", []Reading{temp(3, 21.4)}},
				{"negative zero", []Reading{temp(4, math.Copysign(0, -1))}},
				{"large value", []Reading{temp(5, -1.7976931348623157e308)}},
				{"bytes", []Reading{{Seq: 9, Time: testTime, ContentType: "image/jpeg", Bytes: bytes.Repeat([]byte{0xff}, MaxBytes)}}},
				{"empty bytes", []Reading{{Seq: 10, Time: testTime, ContentType: "event/button", Bytes: []byte{}}}},
				{"epoch and max seq", []Reading{{Seq: math.MaxUint64, Time: time.UnixMilli(0), ContentType: "x", Value: fptr(1)}}},
				{"year 9999", []Reading{{Seq: 1, Time: time.UnixMilli(maxTimeMillis), ContentType: "x", Value: fptr(1)}}},
				{"batch of 2", []Reading{temp(1, 20), temp(2, 20.5)}},
				{"mixed batch", []Reading{temp(1, 20), {Seq: 7, Time: testTime, ContentType: "application/octet-stream", Bytes: []byte{1, 2, 3}}}},
				{"batch of max", batchOf(1, MaxBatch)},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					b := mustSign(t, k, id, tt.rs...)
					e := mustDecode(t, b)
					if e.Device != id || e.Attester != "" || e.Signer() != id || e.Sign1.KID != id {
						t.Errorf("Device %q Attester %q KID %q; want %q, \"\", %q", e.Device, e.Attester, e.Sign1.KID, id, id)
					}
					if e.Batch != (len(tt.rs) > 1) {
						t.Errorf("Batch = %v for %d readings", e.Batch, len(tt.rs))
					}
					if !bytes.Equal(e.Raw, b) {
						t.Error("Raw differs from the signed bytes")
					}
					if len(e.Readings) != len(tt.rs) {
						t.Fatalf("%d readings; want %d", len(e.Readings), len(tt.rs))
					}
					for i, r := range tt.rs {
						want := r
						want.Device = id
						want.Time = r.Time.Truncate(time.Millisecond)
						if !sameReading(e.Readings[i], want) {
							t.Errorf("reading %d = %+v; want %+v", i, e.Readings[i], want)
						}
					}
					if err := e.Verify(k.Public()); err != nil {
						t.Fatalf("Verify() error = %v", err)
					}
					// Signing again gives the same payload (deterministic CBOR).
					if again := mustDecode(t, mustSign(t, k, id, tt.rs...)); !bytes.Equal(again.Sign1.Payload, e.Sign1.Payload) {
						t.Error("payload encoding is not deterministic")
					}
				})
			}
		})
	}
}

// batchOf returns n readings with seqs from first.
func batchOf(first uint64, n int) []Reading {
	rs := make([]Reading, n)
	for i := range rs {
		rs[i] = temp(first+uint64(i), float64(i)/4)
	}
	return rs
}

func TestTimePrecision(t *testing.T) {
	k := testutil.Key(t, identity.Ed25519)
	r := temp(1, 1)
	r.Time = testTime.Add(1234567 * time.Nanosecond).In(time.FixedZone("CET", 3600))
	e := mustDecode(t, mustSign(t, k, k.ID(), r))
	got := e.Readings[0].Time
	if want := testTime.Add(time.Millisecond); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("Time = %v; want %v in UTC", got, want)
	}
}

func TestAttested(t *testing.T) {
	gw := testutil.Key(t, identity.Ed25519)
	dev := testutil.Key(t, identity.Ed25519).ID()
	for _, rs := range [][]Reading{{temp(1, 3)}, batchOf(5, 3)} {
		b, err := SignAttested(gw, gw.ID(), dev, rs...)
		if err != nil {
			t.Fatalf("SignAttested() error = %v", err)
		}
		e := mustDecode(t, b)
		if e.Device != dev || e.Attester != gw.ID() || e.Signer() != gw.ID() || e.Sign1.KID != gw.ID() {
			t.Errorf("Device %q Attester %q Signer %q; want %q, %q", e.Device, e.Attester, e.Signer(), dev, gw.ID())
		}
		for _, r := range e.Readings {
			if r.Device != dev {
				t.Errorf("reading Device = %q; want %q", r.Device, dev)
			}
		}
		if err := e.Verify(gw.Public()); err != nil {
			t.Errorf("Verify(gateway key) error = %v", err)
		}
	}
	if _, err := SignAttested(gw, gw.ID(), gw.ID(), temp(1, 1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("SignAttested(gateway as device) error = %v; want ErrInvalid", err)
	}
	if _, err := SignAttested(gw, gw.ID(), "sensor-7", temp(1, 1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("SignAttested(bad device id) error = %v; want ErrInvalid", err)
	}
	// A reading naming the device is fine; naming the gateway is not.
	r := temp(1, 1)
	r.Device = dev
	if _, err := SignAttested(gw, gw.ID(), dev, r); err != nil {
		t.Errorf("SignAttested(reading with Device) error = %v", err)
	}
	r.Device = gw.ID()
	if _, err := SignAttested(gw, gw.ID(), dev, r); !errors.Is(err, ErrInvalid) {
		t.Errorf("SignAttested(reading of the gateway) error = %v; want ErrInvalid", err)
	}
}

func TestSignRefuses(t *testing.T) {
	k := testutil.Key(t, identity.Ed25519)
	id := k.ID()
	with := func(f func(r *Reading)) Reading {
		r := temp(1, 21.5)
		f(&r)
		return r
	}
	tests := []struct {
		name string
		key  *identity.Key
		id   string
		rs   []Reading
		want string
	}{
		{"no readings", k, id, nil, "0 readings"},
		{"too many readings", k, id, batchOf(1, MaxBatch+1), "257 readings"},
		{"bad device id", k, "sensor-1", []Reading{temp(1, 1)}, "not a did:key"},
		{"short device id", k, "did:key:z6Mk", []Reading{temp(1, 1)}, "did:key is 12 bytes"},
		{"device id not base58", k, "did:key:z" + strings.Repeat("0", 48), []Reading{temp(1, 1)}, "base58"},
		{"other device", k, id, []Reading{with(func(r *Reading) { r.Device = "did:key:zOther" })}, "not"},
		{"seq 0", k, id, []Reading{with(func(r *Reading) { r.Seq = 0 })}, "seq is 0"},
		{"zero time", k, id, []Reading{with(func(r *Reading) { r.Time = time.Time{} })}, "out of range"},
		{"before 1970", k, id, []Reading{with(func(r *Reading) { r.Time = time.UnixMilli(-1) })}, "out of range"},
		{"after 9999", k, id, []Reading{with(func(r *Reading) { r.Time = time.UnixMilli(maxTimeMillis + 1) })}, "out of range"},
		{"empty content type", k, id, []Reading{with(func(r *Reading) { r.ContentType = "" })}, "0 bytes"},
		{"long content type", k, id, []Reading{with(func(r *Reading) { r.ContentType = strings.Repeat("a", 65) })}, "65 bytes"},
		{"space in content type", k, id, []Reading{with(func(r *Reading) { r.ContentType = "a b" })}, "0x20"},
		{"control in content type", k, id, []Reading{with(func(r *Reading) { r.ContentType = "a\nb" })}, "0x0a"},
		{"non-ASCII content type", k, id, []Reading{with(func(r *Reading) { r.ContentType = "°C" })}, "0xc2"},
		{"no value", k, id, []Reading{with(func(r *Reading) { r.Value = nil })}, "none of Value, Bytes and Sealed"},
		{"value and bytes", k, id, []Reading{with(func(r *Reading) { r.Bytes = []byte{1} })}, "more than one of"},
		{"NaN", k, id, []Reading{with(func(r *Reading) { r.Value = fptr(math.NaN()) })}, "finite"},
		{"infinity", k, id, []Reading{with(func(r *Reading) { r.Value = fptr(math.Inf(-1)) })}, "finite"},
		{"bytes too long", k, id, []Reading{with(func(r *Reading) { r.Value = nil; r.Bytes = make([]byte, MaxBytes+1) })}, "65537 long"},
		{"batch not increasing", k, id, []Reading{temp(2, 1), temp(2, 2)}, "readings[1]: seq 2 is not above"},
		{"batch decreasing", k, id, []Reading{temp(3, 1), temp(2, 2)}, "readings[1]"},
		{"batch item invalid", k, id, []Reading{temp(1, 1), with(func(r *Reading) { r.Seq = 2; r.ContentType = "" })}, "readings[1]: content type"},
		{"envelope too large", k, id, bigBatch(3), "more than 131072"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Sign(tt.key, tt.id, tt.rs...)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Sign() = %d bytes, error %v; want ErrInvalid", len(b), err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Sign() error = %q; want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := Sign(nil, id, temp(1, 1)); !errors.Is(err, identity.ErrInvalidKey) {
		t.Errorf("Sign(nil key) error = %v; want identity.ErrInvalidKey", err)
	}
}

// bigBatch returns n readings of MaxBytes bytes each.
func bigBatch(n int) []Reading {
	rs := make([]Reading, n)
	for i := range rs {
		rs[i] = Reading{Seq: uint64(i + 1), Time: testTime, ContentType: "blob", Bytes: make([]byte, MaxBytes)}
	}
	return rs
}

func TestEnvelopeSizeFormula(t *testing.T) {
	for _, alg := range allAlgs() {
		k := testutil.Key(t, alg)
		for _, rs := range [][]Reading{{temp(1, 1)}, batchOf(1, 10), {{Seq: 1, Time: testTime, ContentType: "x", Bytes: make([]byte, 300)}}} {
			b := mustSign(t, k, k.ID(), rs...)
			e := mustDecode(t, b)
			if got := envelopeSize(len(k.ID()), len(e.Sign1.Payload)); got != len(b) {
				t.Errorf("%v: envelopeSize() = %d; the envelope is %d bytes", alg, got, len(b))
			}
		}
	}
}

func TestSizeLimits(t *testing.T) {
	k := testutil.Key(t, identity.Ed25519)
	pair := func(n int) []Reading {
		return []Reading{bigBatch(1)[0], {Seq: 2, Time: testTime, ContentType: "blob", Bytes: make([]byte, n)}}
	}
	// Find the second reading's size that makes the envelope exactly
	// MaxEnvelopeSize bytes (its length head stays 3 bytes).
	n0 := MaxBytes - 1000
	n := n0 + MaxEnvelopeSize - len(mustSign(t, k, k.ID(), pair(n0)...))
	b := mustSign(t, k, k.ID(), pair(n)...)
	if len(b) != MaxEnvelopeSize {
		t.Fatalf("envelope is %d bytes; want %d", len(b), MaxEnvelopeSize)
	}
	if err := mustDecode(t, b).Verify(k.Public()); err != nil {
		t.Fatalf("Verify(largest envelope) error = %v", err)
	}
	if _, err := Sign(k, k.ID(), pair(n+1)...); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Sign(one byte over) error = %v; want ErrInvalid", err)
	}
	_, err := Decode(append(b, 0))
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("Decode(one byte over) error = %v; want ErrTooLarge and ErrMalformed", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := testutil.Key(t, identity.Ed25519)
	other := testutil.Key(t, identity.Ed25519)
	p256 := testutil.Key(t, identity.P256)
	b := mustSign(t, k, k.ID(), temp(1, 21.5))
	e := mustDecode(t, b)
	for name, pub := range map[string]identity.PublicKey{"other key": other.Public(), "other algorithm": p256.Public()} {
		if err := e.Verify(pub); !errors.Is(err, identity.ErrBadSignature) {
			t.Errorf("Verify(%s) error = %v; want identity.ErrBadSignature", name, err)
		}
	}
	// Every single-bit change of the signature or of the payload fails.
	for _, off := range []int{len(b) - 1, len(b) - 64, len(b) - 70} {
		bad := bytes.Clone(b)
		bad[off] ^= 0x01
		e, err := Decode(bad)
		if err != nil {
			continue // the change broke the encoding: also refused
		}
		if err := e.Verify(k.Public()); !errors.Is(err, identity.ErrBadSignature) {
			t.Errorf("Verify(bit %d flipped) error = %v; want identity.ErrBadSignature", off, err)
		}
	}
	// A signature made without the reading context does not verify.
	plain, err := identity.SignCOSE(k, k.ID(), e.Sign1.Payload, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := mustDecode(t, plain).Verify(k.Public()); !errors.Is(err, identity.ErrBadSignature) {
		t.Errorf("Verify(signed without ExternalAAD) error = %v; want identity.ErrBadSignature", err)
	}
	if err := (&Envelope{}).Verify(k.Public()); !errors.Is(err, ErrInvalid) {
		t.Errorf("Verify(empty envelope) error = %v; want ErrInvalid", err)
	}
}

func TestBatchVerification(t *testing.T) {
	var (
		batch = identity.NewBatch(4)
		good  = 0
	)
	for _, alg := range allAlgs() {
		k := testutil.Key(t, alg)
		e := mustDecode(t, mustSign(t, k, k.ID(), batchOf(1, 3)...))
		tbs, err := e.ToBeSigned()
		if err != nil {
			t.Fatal(err)
		}
		batch.Add(k.Public(), tbs, e.Sign1.Signature)
		good++
	}
	k := testutil.Key(t, identity.Ed25519)
	e := mustDecode(t, mustSign(t, k, k.ID(), temp(1, 1)))
	tbs, _ := e.ToBeSigned()
	batch.Add(testutil.Key(t, identity.Ed25519).Public(), tbs, e.Sign1.Signature) // wrong key
	all, valid := batch.Verify()
	if all || len(valid) != good+1 || !valid[0] || !valid[1] || valid[2] {
		t.Errorf("Batch.Verify() = %v, %v; want false, [true true false]", all, valid)
	}
}
