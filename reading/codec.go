package reading

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Payload keys.
const (
	keyDevice      = 1
	keySeq         = 2
	keyTime        = 3
	keyContentType = 4
	keyValue       = 5
	keyBytes       = 6
	keyReadings    = 7
	keyAttested    = 8
	keySealed      = 9
)

// fieldNames names the payload keys in error messages.
var fieldNames = [...]string{
	keyDevice:      "device",
	keySeq:         "seq",
	keyTime:        "time",
	keyContentType: "content type",
	keyValue:       "value",
	keyBytes:       "bytes",
	keyReadings:    "readings",
	keyAttested:    "attested device",
	keySealed:      "sealed value",
}

// field names payload key k in error messages: "4 (content type)".
func field(k int) string {
	if k > 0 && k < len(fieldNames) {
		return fmt.Sprintf("%d (%s)", k, fieldNames[k])
	}
	return fmt.Sprint(k)
}

// codec holds the CBOR modes of reading payloads: RFC 8949 core
// deterministic encoding, and strict decoding (no duplicate or unknown
// keys, no indefinite lengths, no tags, valid UTF-8, bounded sizes). Modes
// are immutable and safe for concurrent use.
type codec struct {
	enc cbor.EncMode
	dec cbor.DecMode
}

var cdc = newCodec()

func newCodec() codec {
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("reading: cbor encode options: %v", err)) // static options; cannot fail
	}
	dec, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   4, // payload map, readings array, item map, one more for a refused value
		MaxArrayElements:  MaxBatch,
		MaxMapPairs:       16,
		UTF8:              cbor.UTF8RejectInvalid,
		IntDec:            cbor.IntDecConvertNone,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("reading: cbor decode options: %v", err))
	}
	return codec{enc: enc, dec: dec}
}

// Encoded forms. Time is Unix milliseconds; Value is encoded as the
// shortest float that holds it exactly (core deterministic encoding).

type outSingle struct {
	Device      string   `cbor:"1,keyasint"`
	Seq         uint64   `cbor:"2,keyasint"`
	Time        uint64   `cbor:"3,keyasint"`
	ContentType string   `cbor:"4,keyasint"`
	Value       *float64 `cbor:"5,keyasint,omitempty"`
	Bytes       *[]byte  `cbor:"6,keyasint,omitempty"`
	Attested    string   `cbor:"8,keyasint,omitempty"`
	Sealed      *Sealed  `cbor:"9,keyasint,omitempty"`
}

type outItem struct {
	Seq         uint64   `cbor:"2,keyasint"`
	Time        uint64   `cbor:"3,keyasint"`
	ContentType string   `cbor:"4,keyasint"`
	Value       *float64 `cbor:"5,keyasint,omitempty"`
	Bytes       *[]byte  `cbor:"6,keyasint,omitempty"`
	Sealed      *Sealed  `cbor:"9,keyasint,omitempty"`
}

type outBatch struct {
	Device   string    `cbor:"1,keyasint"`
	Readings []outItem `cbor:"7,keyasint"`
	Attested string    `cbor:"8,keyasint,omitempty"`
}

// Decoded forms: pointers tell a missing key from a zero value. Value is
// kept raw, since it may be an integer or a float.

type inItem struct {
	Seq         *uint64         `cbor:"2,keyasint,omitempty"`
	Time        *uint64         `cbor:"3,keyasint,omitempty"`
	ContentType *string         `cbor:"4,keyasint,omitempty"`
	Value       cbor.RawMessage `cbor:"5,keyasint,omitempty"`
	Bytes       *[]byte         `cbor:"6,keyasint,omitempty"`
	Sealed      *inSealed       `cbor:"9,keyasint,omitempty"`
}

type inPayload struct {
	Device      *string         `cbor:"1,keyasint,omitempty"`
	Seq         *uint64         `cbor:"2,keyasint,omitempty"`
	Time        *uint64         `cbor:"3,keyasint,omitempty"`
	ContentType *string         `cbor:"4,keyasint,omitempty"`
	Value       cbor.RawMessage `cbor:"5,keyasint,omitempty"`
	Bytes       *[]byte         `cbor:"6,keyasint,omitempty"`
	Readings    *[]inItem       `cbor:"7,keyasint,omitempty"`
	Attested    *string         `cbor:"8,keyasint,omitempty"`
	Sealed      *inSealed       `cbor:"9,keyasint,omitempty"`
}

// item returns the reading fields of a single-form payload.
func (p *inPayload) item() inItem {
	return inItem{Seq: p.Seq, Time: p.Time, ContentType: p.ContentType, Value: p.Value, Bytes: p.Bytes, Sealed: p.Sealed}
}
