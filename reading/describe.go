package reading

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// Decoding errors, in words that name the payload key at fault.

// cborType names the type of an item from its initial byte.
func cborType(major, ai byte) string {
	switch major {
	case 2:
		return "byte string"
	case 3:
		return "text string"
	case 4:
		return "array"
	case 5:
		return "map"
	case 6:
		return "tag"
	}
	switch ai {
	case 20, 21:
		return "boolean"
	case 22:
		return "null"
	case 23:
		return "undefined"
	}
	return "simple value"
}

// describe turns a CBOR decoding error of payload into a message that
// names the payload key at fault where it can be found.
func describe(err error, payload []byte) string {
	var (
		typeErr  *cbor.UnmarshalTypeError
		dupErr   *cbor.DupMapKeyError
		unknown  *cbor.UnknownFieldError
		arrayErr *cbor.MaxArrayElementsError
	)
	switch {
	case errors.As(err, &typeErr):
		return "payload" + describeType(typeErr)
	case errors.As(err, &dupErr):
		return fmt.Sprintf("payload: duplicate key %v", dupErr.Key)
	case errors.As(err, &unknown):
		return "payload: " + findUnknown(payload)
	case errors.As(err, &arrayErr):
		return fmt.Sprintf("payload: key %s has more than %d items", field(keyReadings), MaxBatch)
	}
	return "payload: " + err.Error()
}

// describeType describes a type mismatch. The decoder names the key of
// the top-level map only, also for a mismatch inside a batch item.
func describeType(e *cbor.UnmarshalTypeError) string {
	want := map[string]string{
		"uint64":            "an unsigned integer",
		"string":            "a text string",
		"[]uint8":           "a byte string",
		"reading.inItem":    "a map",
		"reading.inPayload": "a map",
		"[]reading.inItem":  "an array",
		"reading.inSealed":  "a map",
	}[e.GoType]
	if want == "" {
		want = e.GoType
	}
	got := e.CBORType
	if got == "primitives" { // the decoder's name for floats and simple values
		got = "float or simple value"
	}
	where := "" // the payload itself
	if name := e.StructFieldName; name != "" {
		var k int
		if _, err := fmt.Sscan(name[strings.LastIndexByte(name, '.')+1:], &k); err == nil {
			where = ": key " + field(k)
		}
		if k == keyReadings {
			switch e.GoType {
			case "reading.inItem":
				where = ": an item of key " + field(k)
			case "[]reading.inItem":
			default:
				where = ": a field of an item of key " + field(k)
			}
		}
	}
	return fmt.Sprintf("%s is %s, want %s", where, article(got), want)
}

// findUnknown names the unknown key that made payload fail to decode. It
// decodes the payload again, loosely; it runs on the error path only.
func findUnknown(payload []byte) string {
	const generic = "unknown key (a payload holds keys 1 to 9, a batch item keys 2 to 6 and 9, a sealed value keys 1 to 5)"
	var top map[any]cbor.RawMessage
	if cdc.dec.Unmarshal(payload, &top) != nil {
		return generic
	}
	for k := range top {
		if n, ok := k.(uint64); !ok || n < keyDevice || n > keySealed {
			return fmt.Sprintf("unknown key %s (a payload holds keys 1 to 9)", keyString(k))
		}
	}
	if msg := unknownSealed(top, ""); msg != "" {
		return msg
	}
	var items []map[any]cbor.RawMessage
	if raw, ok := top[uint64(keyReadings)]; !ok || cdc.dec.Unmarshal(raw, &items) != nil {
		return generic
	}
	for i, it := range items {
		for k := range it {
			if n, ok := k.(uint64); !ok || n < keySeq || n > keySealed || n == keyReadings || n == keyAttested {
				return fmt.Sprintf("key %s, item %d: unknown key %s (an item holds keys 2 to 6 and 9)", field(keyReadings), i, keyString(k))
			}
		}
		if msg := unknownSealed(it, fmt.Sprintf("key %s, item %d: ", field(keyReadings), i)); msg != "" {
			return msg
		}
	}
	return generic
}

// unknownSealed names an unknown key of the sealed value of m, if any.
func unknownSealed(m map[any]cbor.RawMessage, where string) string {
	raw, ok := m[uint64(keySealed)]
	if !ok {
		return ""
	}
	var sm map[any]cbor.RawMessage
	if cdc.dec.Unmarshal(raw, &sm) != nil {
		return ""
	}
	for k := range sm {
		if n, ok := k.(uint64); !ok || n < 1 || n > 5 {
			return fmt.Sprintf("%skey %s: unknown key %s (a sealed value holds keys 1 to 5)", where, field(keySealed), keyString(k))
		}
	}
	return ""
}

// keyString formats a decoded map key.
func keyString(k any) string {
	if s, ok := k.(string); ok {
		return fmt.Sprintf("%q", truncate(s))
	}
	return fmt.Sprint(k)
}

// article prefixes a noun with "a" or "an".
func article(s string) string {
	if s != "" && strings.ContainsRune("aeio", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}
