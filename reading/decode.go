package reading

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/thingnet/thingnet/identity"
)

// Decode parses an envelope without verifying its signature. It is strict,
// and every failure wraps ErrMalformed with a message naming the field:
//
//   - at most MaxEnvelopeSize bytes (else also ErrTooLarge);
//   - a COSE_Sign1 message as identity.DecodeSign1 accepts it;
//   - a payload map with integer keys 1 to 9 only, no duplicates, definite
//     lengths, no tags, valid UTF-8;
//   - key 1 a did:key equal to the kid; key 8, if present, another did:key
//     (the attested device);
//   - either key 7 (the batch form: 1 to MaxBatch items, each a map of
//     keys 2 to 6 and 9, strictly increasing seqs) and none of keys 2 to
//     6 and 9, or keys 2, 3 and 4 (the single form);
//   - in every reading: seq >= 1; time at most year 9999 in Unix
//     milliseconds; content type 1 to 64 bytes of printable ASCII; exactly
//     one of value (an integer of magnitude at most 2^53, or a finite
//     float), bytes (at most MaxBytes) and sealed value (a map as
//     Sealed describes, see sealed.go).
//
// The envelope does not share memory with raw.
func Decode(raw []byte) (*Envelope, error) {
	if len(raw) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %w: envelope is %d bytes, more than %d", ErrMalformed, ErrTooLarge, len(raw), MaxEnvelopeSize)
	}
	m, err := identity.DecodeSign1(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var p inPayload
	if err := cdc.dec.Unmarshal(m.Payload, &p); err != nil {
		return nil, malformed("%s", describe(err, m.Payload))
	}
	if p.Device == nil {
		return nil, malformed("payload: key %s is missing", field(keyDevice))
	}
	signer := *p.Device
	if err := checkID(signer); err != nil {
		return nil, malformed("payload: key %s: %v", field(keyDevice), err)
	}
	if signer != m.KID {
		return nil, malformed("payload: key %s %q differs from the COSE kid %q", field(keyDevice), signer, truncate(m.KID))
	}
	e := &Envelope{Device: signer, Sign1: m}
	if p.Attested != nil {
		if err := checkID(*p.Attested); err != nil {
			return nil, malformed("payload: key %s: %v", field(keyAttested), err)
		}
		if *p.Attested == signer {
			return nil, malformed("payload: key %s names the signer itself", field(keyAttested))
		}
		e.Device, e.Attester = *p.Attested, signer
	}
	if p.Readings != nil {
		if err := p.checkBatchOnly(); err != nil {
			return nil, err
		}
		items := *p.Readings
		if len(items) == 0 || len(items) > MaxBatch {
			return nil, malformed("payload: key %s has %d items, want 1 to %d", field(keyReadings), len(items), MaxBatch)
		}
		e.Batch = true
		e.Readings = make([]Reading, len(items))
		for i := range items {
			r, err := items[i].reading(e.Device)
			if err != nil {
				return nil, malformed("payload: key %s, item %d: %v", field(keyReadings), i, err)
			}
			if i > 0 && r.Seq <= e.Readings[i-1].Seq {
				return nil, malformed("payload: key %s, item %d: seq %d is not above the previous item's %d",
					field(keyReadings), i, r.Seq, e.Readings[i-1].Seq)
			}
			e.Readings[i] = r
		}
	} else {
		it := p.item()
		if it.Seq == nil && it.Time == nil && it.ContentType == nil && it.Value == nil && it.Bytes == nil && it.Sealed == nil {
			return nil, malformed("payload has neither key %s (a batch) nor keys 2 to 6 or 9 (a single reading)", field(keyReadings))
		}
		r, err := it.reading(e.Device)
		if err != nil {
			return nil, malformed("payload: %v", err)
		}
		e.Readings = []Reading{r}
	}
	e.Raw = bytes.Clone(raw)
	return e, nil
}

// checkBatchOnly refuses reading fields beside the batch's key 7.
func (p *inPayload) checkBatchOnly() error {
	present := []struct {
		key int
		ok  bool
	}{
		{keySeq, p.Seq != nil},
		{keyTime, p.Time != nil},
		{keyContentType, p.ContentType != nil},
		{keyValue, p.Value != nil},
		{keyBytes, p.Bytes != nil},
		{keySealed, p.Sealed != nil},
	}
	for _, f := range present {
		if f.ok {
			return malformed("payload: key %s beside key %s: a batch holds its fields in its items", field(f.key), field(keyReadings))
		}
	}
	return nil
}

// reading checks the fields of one reading and returns it.
func (it *inItem) reading(device string) (Reading, error) {
	switch {
	case it.Seq == nil:
		return Reading{}, fmt.Errorf("key %s is missing", field(keySeq))
	case it.Time == nil:
		return Reading{}, fmt.Errorf("key %s is missing", field(keyTime))
	case it.ContentType == nil:
		return Reading{}, fmt.Errorf("key %s is missing", field(keyContentType))
	}
	switch n := count(it.Value != nil, it.Bytes != nil, it.Sealed != nil); {
	case n == 0:
		return Reading{}, fmt.Errorf("keys %s, %s and %s are all missing, want one", field(keyValue), field(keyBytes), field(keySealed))
	case n > 1:
		return Reading{}, fmt.Errorf("%d of keys %s, %s and %s are present, want one", n, field(keyValue), field(keyBytes), field(keySealed))
	}
	if *it.Seq == 0 {
		return Reading{}, fmt.Errorf("key %s is 0, want 1 or more", field(keySeq))
	}
	if *it.Time > maxTimeMillis {
		return Reading{}, fmt.Errorf("key %s %d is after year 9999", field(keyTime), *it.Time)
	}
	if err := checkContentType(*it.ContentType); err != nil {
		return Reading{}, fmt.Errorf("key %s %v", field(keyContentType), err)
	}
	r := Reading{
		Device:      device,
		Seq:         *it.Seq,
		Time:        time.UnixMilli(int64(*it.Time)).UTC(),
		ContentType: *it.ContentType,
	}
	switch {
	case it.Sealed != nil:
		sv, err := it.Sealed.sealed()
		if err != nil {
			return Reading{}, fmt.Errorf("key %s: %v", field(keySealed), err)
		}
		r.Sealed = sv
	case it.Value != nil:
		v, err := decodeValue(it.Value)
		if err != nil {
			return Reading{}, fmt.Errorf("key %s %v", field(keyValue), err)
		}
		r.Value = &v
	default:
		if len(*it.Bytes) > MaxBytes {
			return Reading{}, fmt.Errorf("key %s is %d bytes, more than %d", field(keyBytes), len(*it.Bytes), MaxBytes)
		}
		r.Bytes = *it.Bytes
	}
	return r, nil
}

// decodeValue decodes a value: an integer of magnitude at most 2^53 (so
// that the float64 is exact) or a finite half, single or double float.
// raw is one well-formed CBOR item.
func decodeValue(raw cbor.RawMessage) (float64, error) {
	major, ai := raw[0]>>5, raw[0]&0x1f
	switch {
	case major == 0 || major == 1:
		n := cborArg(raw)
		if major == 0 && n > maxExactInt || major == 1 && n >= maxExactInt {
			return 0, fmt.Errorf("is an integer of magnitude over 2^53, which a float64 does not hold exactly")
		}
		if major == 1 {
			return -1 - float64(n), nil
		}
		return float64(n), nil
	case major == 7 && ai >= 25 && ai <= 27:
		var v float64
		if err := cdc.dec.Unmarshal(raw, &v); err != nil {
			return 0, fmt.Errorf("is not a float: %v", err)
		}
		if err := checkValue(v); err != nil {
			return 0, err
		}
		return v, nil
	}
	return 0, fmt.Errorf("is %s, want an integer or a float", article(cborType(major, ai)))
}

// cborArg returns the argument of a well-formed integer head.
func cborArg(raw []byte) uint64 {
	switch ai := raw[0] & 0x1f; ai {
	case 24:
		return uint64(raw[1])
	case 25:
		return uint64(binary.BigEndian.Uint16(raw[1:]))
	case 26:
		return uint64(binary.BigEndian.Uint32(raw[1:]))
	case 27:
		return binary.BigEndian.Uint64(raw[1:])
	default:
		return uint64(ai)
	}
}
