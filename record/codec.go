package record

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// codec holds the CBOR modes used for everything the ledger encodes and
// decodes. Encoding is RFC 8949 core deterministic; decoding is strict:
// duplicate map keys, indefinite lengths, unknown fields and invalid UTF-8 are
// refused, and sizes are bounded.
type codec struct {
	enc cbor.EncMode
	dec cbor.DecMode
}

func newCodec() codec {
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("ledger: cbor encode options: %v", err)) // static options; cannot fail
	}
	dec, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   16,
		MaxArrayElements:  4096,
		MaxMapPairs:       1024,
		UTF8:              cbor.UTF8RejectInvalid,
		IntDec:            cbor.IntDecConvertNone,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("ledger: cbor decode options: %v", err))
	}
	return codec{enc: enc, dec: dec}
}

// cbor is the package's codec; modes are immutable and safe for concurrent use.
var cdc = newCodec()

// Marshal encodes v as deterministic CBOR.
func Marshal(v any) ([]byte, error) { return cdc.enc.Marshal(v) }

// Unmarshal decodes strict CBOR into v; trailing bytes are an error.
func Unmarshal(b []byte, v any) error { return cdc.dec.Unmarshal(b, v) }

func MustMarshal(v any) []byte {
	b, err := cdc.enc.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("ledger: encoding %T: %v", v, err)) // only our own record types reach here
	}
	return b
}
