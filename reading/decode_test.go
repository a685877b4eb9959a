package reading

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
)

// pmap is a payload as a CBOR map; tests edit it to make bad envelopes.
type pmap map[any]any

func singlePayload(id string) pmap {
	return pmap{1: id, 2: 1, 3: uint64(testTime.UnixMilli()), 4: "temperature/celsius", 5: 21.5}
}

func batchPayload(id string) pmap {
	return pmap{1: id, 7: []any{
		pmap{2: 1, 3: uint64(testTime.UnixMilli()), 4: "temperature/celsius", 5: 21.5},
		pmap{2: 2, 3: uint64(testTime.UnixMilli()), 4: "temperature/celsius", 5: 21.75},
	}}
}

// item returns batch item i of p, to edit.
func (p pmap) item(i int) pmap { return p[7].([]any)[i].(pmap) }

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeMalformed(t *testing.T) {
	k := testutil.Key(t, identity.Ed25519)
	id := k.ID()
	other := testutil.Key(t, identity.Ed25519).ID()
	single := func(f func(p pmap)) []byte {
		p := singlePayload(id)
		f(p)
		return signPayload(t, k, id, encode(t, p))
	}
	batch := func(f func(p pmap)) []byte {
		p := batchPayload(id)
		f(p)
		return signPayload(t, k, id, encode(t, p))
	}
	raw := func(payload string) []byte { return signPayload(t, k, id, mustHex(t, payload)) }
	// The valid forms decode.
	mustDecode(t, single(func(pmap) {}))
	mustDecode(t, batch(func(pmap) {}))

	many := make([]any, MaxBatch+1)
	for i := range many {
		many[i] = pmap{2: i + 1, 3: 0, 4: "x", 5: 0}
	}
	tests := []struct {
		name string
		env  []byte
		want string // part of the error message
	}{
		// Envelope.
		{"empty", nil, "cose"},
		{"not COSE", []byte("hello"), "cose"},
		{"kid differs from key 1", signPayload(t, k, other, encode(t, singlePayload(id))), "differs from the COSE kid"},
		{"unprotected header", append([]byte{0xd2, 0x84, 0x40, 0xa1, 0x01, 0x27}, 0x40, 0x40), "unprotected"},
		// Payload structure.
		{"payload not a map", raw("80"), "payload is an array, want a map"},
		{"payload empty", raw(""), "payload"},
		{"trailing bytes", signPayload(t, k, id, append(encode(t, singlePayload(id)), 0)), "extraneous"},
		{"indefinite map", raw("bf01f5ff"), "indefinite"},
		{"tag", raw("a101c16161"), "tag"},
		{"duplicate key", raw("a2026161026161"), "duplicate key"},
		{"unknown key", single(func(p pmap) { p[10] = 1 }), "unknown key 10"},
		{"text key", single(func(p pmap) { p["seq"] = 1 }), `unknown key "seq"`},
		{"negative key", single(func(p pmap) { p[-1] = 1 }), "unknown key -1"},
		// Key 1.
		{"only a device", signPayload(t, k, id, encode(t, pmap{1: id})), "neither key 7 (readings) (a batch) nor keys 2 to 6"},
		{"missing device", single(func(p pmap) { delete(p, 1) }), "key 1 (device) is missing"},
		{"device not text", single(func(p pmap) { p[1] = []byte(id) }), "key 1 (device) is a"},
		{"device not a did", single(func(p pmap) { p[1] = "sensor-1" }), "not a did:key"},
		{"device invalid UTF-8", raw("a10162c328"), "UTF-8"},
		// Single form.
		{"missing seq", single(func(p pmap) { delete(p, 2) }), "key 2 (seq) is missing"},
		{"missing time", single(func(p pmap) { delete(p, 3) }), "key 3 (time) is missing"},
		{"missing content type", single(func(p pmap) { delete(p, 4) }), "key 4 (content type) is missing"},
		{"missing value", single(func(p pmap) { delete(p, 5) }), "keys 5 (value), 6 (bytes) and 9 (sealed value) are all missing"},
		{"value and bytes", single(func(p pmap) { p[6] = []byte{1} }), "2 of keys 5 (value), 6 (bytes) and 9 (sealed value) are present"},
		{"seq 0", single(func(p pmap) { p[2] = 0 }), "key 2 (seq) is 0"},
		{"seq negative", single(func(p pmap) { p[2] = -1 }), "key 2 (seq) is a"},
		{"seq text", single(func(p pmap) { p[2] = "1" }), "key 2 (seq) is a"},
		{"seq float", single(func(p pmap) { p[2] = 1.0 }), "key 2 (seq) is a"},
		{"time negative", single(func(p pmap) { p[3] = -5 }), "key 3 (time) is a"},
		{"time after 9999", single(func(p pmap) { p[3] = uint64(maxTimeMillis + 1) }), "key 3 (time) 253402300800000 is after year 9999"},
		{"time float", single(func(p pmap) { p[3] = 1.5 }), "key 3 (time) is a"},
		{"content type empty", single(func(p pmap) { p[4] = "" }), "key 4 (content type) is 0 bytes"},
		{"content type long", single(func(p pmap) { p[4] = strings.Repeat("a", 65) }), "key 4 (content type) is 65 bytes"},
		{"content type space", single(func(p pmap) { p[4] = "a b" }), "byte 0x20"},
		{"content type DEL", single(func(p pmap) { p[4] = "a\x7f" }), "byte 0x7f"},
		{"content type bytes", single(func(p pmap) { p[4] = []byte("x") }), "key 4 (content type) is a"},
		{"value text", single(func(p pmap) { p[5] = "21.5" }), "key 5 (value) is a text string"},
		{"value bool", single(func(p pmap) { p[5] = true }), "key 5 (value) is a boolean"},
		{"value null", single(func(p pmap) { p[5] = nil }), "key 5 (value) is a null"},
		{"value array", single(func(p pmap) { p[5] = []int{1} }), "key 5 (value) is an array"},
		{"value NaN", raw(hexSingle(id, "f97e00")), "finite"},
		{"value infinity", raw(hexSingle(id, "fa7f800000")), "finite"},
		{"value -infinity", raw(hexSingle(id, "fbfff0000000000000")), "finite"},
		{"value int over 2^53", single(func(p pmap) { p[5] = uint64(1<<53 + 1) }), "over 2^53"},
		{"value int under -2^53", single(func(p pmap) { p[5] = -(1 << 53) - 1 }), "over 2^53"},
		{"value bignum", raw(hexSingle(id, "c249010000000000000000")), "tag"},
		{"value nested too deep", raw(hexSingle(id, "81818181818100")), "nested"},
		{"value simple", raw(hexSingle(id, "e0")), "key 5 (value) is a simple value"},
		{"bytes text", single(func(p pmap) { delete(p, 5); p[6] = "abc" }), "key 6 (bytes) is a"},
		{"bytes too long", single(func(p pmap) { delete(p, 5); p[6] = make([]byte, MaxBytes+1) }), "key 6 (bytes) is 65537 bytes"},
		// Key 8.
		{"attested not a did", single(func(p pmap) { p[8] = "sensor-1" }), "key 8 (attested device)"},
		{"attested is the signer", single(func(p pmap) { p[8] = id }), "names the signer itself"},
		{"attested not text", single(func(p pmap) { p[8] = 8 }), "key 8 (attested device) is a"},
		// Batch form.
		{"batch empty", batch(func(p pmap) { p[7] = []any{} }), "key 7 (readings) has 0 items"},
		{"batch too long", batch(func(p pmap) { p[7] = many }), "more than 256 items"},
		{"batch not an array", batch(func(p pmap) { p[7] = pmap{} }), "key 7 (readings) is a"},
		{"batch item not a map", batch(func(p pmap) { p[7] = []any{1} }), "an item of key 7 (readings) is a positive integer, want a map"},
		{"batch with seq beside", batch(func(p pmap) { p[2] = 1 }), "key 2 (seq) beside key 7"},
		{"batch with value beside", batch(func(p pmap) { p[5] = 1 }), "key 5 (value) beside key 7"},
		{"batch item with device", batch(func(p pmap) { p.item(0)[1] = id }), "item 0: unknown key 1"},
		{"batch item with batch", batch(func(p pmap) { p.item(1)[7] = []any{} }), "item 1: unknown key 7"},
		{"batch item missing seq", batch(func(p pmap) { delete(p.item(1), 2) }), "item 1: key 2 (seq) is missing"},
		{"batch item seq text", batch(func(p pmap) { p.item(1)[2] = "2" }), "a field of an item of key 7 (readings) is a UTF-8 text string, want an unsigned integer"},
		{"batch item missing value", batch(func(p pmap) { delete(p.item(0), 5) }), "item 0: keys 5 (value), 6 (bytes) and 9 (sealed value) are all missing"},
		{"batch item bad content type", batch(func(p pmap) { p.item(1)[4] = "" }), "item 1: key 4 (content type)"},
		{"batch seq equal", batch(func(p pmap) { p.item(1)[2] = 1 }), "item 1: seq 1 is not above the previous item's 1"},
		{"batch seq decreasing", batch(func(p pmap) { p.item(0)[2] = 5 }), "item 1: seq 2 is not above the previous item's 5"},
		{"batch seq 0", batch(func(p pmap) { p.item(0)[2] = 0 }), "item 0: key 2 (seq) is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode(tt.env)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode() = %+v, error %v; want ErrMalformed", e, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode() error = %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

// hexSingle returns, as hex, a single-form payload with the given encoded
// value.
func hexSingle(id, value string) string {
	p := encodeNoT(pmap{1: id, 2: 1, 3: 0, 4: "x"})
	p[0]++ // one more map entry
	return hex.EncodeToString(p) + "05" + value
}

// encodeNoT encodes v with the package's encoder; v must be encodable.
func encodeNoT(v any) []byte {
	b, err := cdc.enc.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestDecodeValues(t *testing.T) {
	k := testutil.Key(t, identity.Ed25519)
	id := k.ID()
	tests := []struct {
		value string // encoded
		want  float64
	}{
		{"00", 0},
		{"17", 23},
		{"1903e8", 1000},
		{"20", -1},
		{"3903e7", -1000},
		{"1b0020000000000000", 1 << 53},
		{"3b001fffffffffffff", -(1 << 53)},
		{"f93c00", 1},
		{"f94d60", 21.5},
		{"f98000", 0},
		{"fa3e200000", 0.15625},
		{"fb4035666666666666", 21.4},
		{"fb7fefffffffffffff", 1.7976931348623157e308},
		// Non-shortest forms are accepted: the signature covers the
		// exact bytes, so they cannot be changed by anyone but the device.
		{"1a000003e8", 1000},
		{"fb4035800000000000", 21.5},
	}
	for _, tt := range tests {
		e, err := Decode(signPayload(t, k, id, mustHex(t, hexSingle(id, tt.value))))
		if err != nil {
			t.Errorf("value %s: Decode() error = %v", tt.value, err)
			continue
		}
		if got := e.Readings[0].Value; got == nil || *got != tt.want {
			t.Errorf("value %s: Decode() value = %v; want %v", tt.value, got, tt.want)
		}
	}
}

func TestDecodeCopies(t *testing.T) {
	k := testutil.Key(t, identity.Ed25519)
	b := mustSign(t, k, k.ID(), Reading{Seq: 1, Time: testTime, ContentType: "blob", Bytes: []byte{1, 2, 3}})
	e := mustDecode(t, b)
	want := bytes.Clone(b)
	clear(b)
	if !bytes.Equal(e.Raw, want) || !bytes.Equal(e.Readings[0].Bytes, []byte{1, 2, 3}) {
		t.Fatal("the envelope shares memory with the input")
	}
	if err := e.Verify(k.Public()); err != nil {
		t.Fatalf("Verify() after the input was cleared: %v", err)
	}
}

// TestDecodeOptions checks that the decoder is as strict as the ledger's.
func TestDecodeOptions(t *testing.T) {
	var v inPayload
	for name, h := range map[string]string{
		"indefinite-length text":  "a1017f6161ff",
		"indefinite-length bytes": "a1065f4101ff",
		"indefinite array":        "a1079fff",
	} {
		if err := cdc.dec.Unmarshal(mustHex(t, h), &v); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}
