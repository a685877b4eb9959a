package reading

import (
	"fmt"

	"github.com/thingnet/thingnet/identity"
)

// Sign signs readings of deviceID with the device's key k: one reading in
// the single form, more (up to MaxBatch, in strictly increasing Seq order)
// in the batch form under one signature. A reading's Device may be empty
// or deviceID. Errors wrap ErrInvalid, or are the signer's.
func Sign(k *identity.Key, deviceID string, rs ...Reading) ([]byte, error) {
	return sign(k, deviceID, deviceID, "", rs)
}

// SignAttested signs readings of deviceID, a device too weak to sign, with
// the key of the gateway gatewayID that the ledger names as its attester.
// The envelope's kid and key 1 are gatewayID; key 8 names the device.
// Decode returns the device as Envelope.Device and the gateway as
// Envelope.Attester.
func SignAttested(gateway *identity.Key, gatewayID, deviceID string, rs ...Reading) ([]byte, error) {
	if err := checkID(deviceID); err != nil {
		return nil, invalid("attested device: %v", err)
	}
	if gatewayID == deviceID {
		return nil, invalid("attested device %s is the gateway itself; use Sign", deviceID)
	}
	return sign(gateway, gatewayID, deviceID, deviceID, rs)
}

// sign encodes and signs: signer is the kid and key 1, device the id the
// readings must carry, attested key 8 (empty for none).
func sign(k *identity.Key, signer, device, attested string, rs []Reading) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: nil key", identity.ErrInvalidKey)
	}
	if err := checkID(signer); err != nil {
		return nil, invalid("signer: %v", err)
	}
	if len(rs) == 0 || len(rs) > MaxBatch {
		return nil, invalid("%d readings, want 1 to %d", len(rs), MaxBatch)
	}
	items := make([]outItem, len(rs))
	for i, r := range rs {
		it, err := encodeReading(r, device)
		if err != nil {
			if len(rs) == 1 {
				return nil, invalid("%v", err)
			}
			return nil, invalid("readings[%d]: %v", i, err)
		}
		if i > 0 && r.Seq <= rs[i-1].Seq {
			return nil, invalid("readings[%d]: seq %d is not above the previous reading's %d", i, r.Seq, rs[i-1].Seq)
		}
		items[i] = it
	}
	var v any
	if len(items) == 1 {
		it := items[0]
		v = outSingle{
			Device: signer, Seq: it.Seq, Time: it.Time, ContentType: it.ContentType,
			Value: it.Value, Bytes: it.Bytes, Attested: attested, Sealed: it.Sealed,
		}
	} else {
		v = outBatch{Device: signer, Readings: items, Attested: attested}
	}
	payload, err := cdc.enc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("reading: encoding payload: %w", err)
	}
	if size := envelopeSize(len(signer), len(payload)); size > MaxEnvelopeSize {
		return nil, invalid("envelope would be %d bytes, more than %d", size, MaxEnvelopeSize)
	}
	b, err := identity.SignCOSE(k, signer, payload, []byte(ExternalAAD))
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	return b, nil
}

// encodeReading checks r and returns its encoded form.
func encodeReading(r Reading, device string) (outItem, error) {
	if r.Device != "" && r.Device != device {
		return outItem{}, fmt.Errorf("reading is of device %q, not %q", truncate(r.Device), truncate(device))
	}
	if r.Seq == 0 {
		return outItem{}, fmt.Errorf("seq is 0, want 1 or more")
	}
	ms := r.Time.UnixMilli()
	if ms < 0 || ms > maxTimeMillis {
		return outItem{}, fmt.Errorf("time %s is out of range (1970 to 9999)", r.Time.UTC())
	}
	if err := checkContentType(r.ContentType); err != nil {
		return outItem{}, fmt.Errorf("content type %q %v", truncate(r.ContentType), err)
	}
	it := outItem{Seq: r.Seq, Time: uint64(ms), ContentType: r.ContentType}
	switch {
	case (r.Value != nil) && (r.Bytes != nil) || (r.Value != nil || r.Bytes != nil) && r.Sealed != nil:
		return outItem{}, fmt.Errorf("more than one of Value, Bytes and Sealed is set, want one")
	case r.Sealed != nil:
		if err := r.Sealed.check(); err != nil {
			return outItem{}, fmt.Errorf("sealed value %v", err)
		}
		s := *r.Sealed
		it.Sealed = &s
	case r.Value != nil:
		if err := checkValue(*r.Value); err != nil {
			return outItem{}, fmt.Errorf("value %v", err)
		}
		v := *r.Value
		it.Value = &v
	case r.Bytes != nil:
		if len(r.Bytes) > MaxBytes {
			return outItem{}, fmt.Errorf("bytes are %d long, more than %d", len(r.Bytes), MaxBytes)
		}
		it.Bytes = &r.Bytes
	default:
		return outItem{}, fmt.Errorf("none of Value, Bytes and Sealed is set, want one")
	}
	return it, nil
}

// envelopeSize is the size of a COSE_Sign1 message as SignCOSE makes it:
// tag 18, array(4), protected {1: alg, 4: kid} as a bstr, empty
// unprotected map, payload bstr, 64-byte signature bstr.
func envelopeSize(kidLen, payloadLen int) int {
	protected := 4 + headSize(kidLen) + kidLen
	return 1 + 1 + headSize(protected) + protected + 1 + headSize(payloadLen) + payloadLen + 2 + 64
}

// headSize is the size of the shortest CBOR head with argument n.
func headSize(n int) int {
	switch {
	case n < 24:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	}
	return 5
}
