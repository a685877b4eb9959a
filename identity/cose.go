package identity

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxSign1Size is the largest COSE_Sign1 message, in bytes, that
// DecodeSign1 accepts and SignCOSE produces.
const MaxSign1Size = 128 << 10

const (
	cborTagSign1   = 18           // COSE_Sign1 (RFC 9052 §2)
	headerAlg      = 1            // alg header parameter
	headerCrit     = 2            // crit header parameter
	headerKID      = 4            // kid header parameter
	sig1Context    = "Signature1" // Sig_structure context of COSE_Sign1
	maxKIDSize     = 256
	maxHeaderCount = 16 // entries in the protected header map, labels in crit
)

// checkKID checks a kid: 1 to 256 bytes of UTF-8.
func checkKID(kid []byte) error {
	if len(kid) == 0 || len(kid) > maxKIDSize {
		return fmt.Errorf("kid is %d bytes, want 1 to %d", len(kid), maxKIDSize)
	}
	if !utf8.Valid(kid) {
		return errors.New("kid is not valid UTF-8")
	}
	return nil
}

// encodeProtected encodes the protected header {1: alg, 4: kid}.
func encodeProtected(alg Algorithm, kid string) []byte {
	b := make([]byte, 0, 4+headSize(uint64(len(kid)))+len(kid))
	b = AppendCBORHead(b, majorMap, 2)
	b = appendInt(b, headerAlg)
	b = appendInt(b, int64(alg))
	b = appendInt(b, headerKID)
	b = AppendCBORHead(b, majorBytes, uint64(len(kid)))
	return append(b, kid...)
}

// sigStructure encodes the Sig_structure of a COSE_Sign1 message (RFC 9052
// §4.4): ["Signature1", protected, external_aad, payload].
func sigStructure(protected, external, payload []byte) []byte {
	n := 1 + 1 + len(sig1Context) +
		headSize(uint64(len(protected))) + len(protected) +
		headSize(uint64(len(external))) + len(external) +
		headSize(uint64(len(payload))) + len(payload)
	b := make([]byte, 0, n)
	b = AppendCBORHead(b, majorArray, 4)
	b = AppendCBORHead(b, majorText, uint64(len(sig1Context)))
	b = append(b, sig1Context...)
	b = appendBytes(b, protected)
	b = appendBytes(b, external)
	return appendBytes(b, payload)
}

// SignCOSE signs payload as a tagged COSE_Sign1 message (RFC 9052) with the
// payload attached. The protected header is {1: alg, 4: kid}, where kid is
// the signer's account id (usually its did:key) as UTF-8, 1 to 256 bytes;
// the unprotected header is empty. external is the externally supplied
// data bound into the signature; it may be nil.
func SignCOSE(k *Key, kid string, payload, external []byte) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: nil key", ErrInvalidKey)
	}
	if err := checkKID([]byte(kid)); err != nil {
		return nil, fmt.Errorf("identity: cose: %v", err)
	}
	protected := encodeProtected(k.Alg(), kid)
	size := headSize(cborTagSign1) + 1 +
		headSize(uint64(len(protected))) + len(protected) + 1 +
		headSize(uint64(len(payload))) + len(payload) +
		headSize(signatureSize) + signatureSize
	if size > MaxSign1Size {
		return nil, fmt.Errorf("identity: cose: message would be %d bytes, more than %d", size, MaxSign1Size)
	}
	sig, err := k.Sign(sigStructure(protected, external, payload))
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, size)
	b = AppendCBORHead(b, majorTag, cborTagSign1)
	b = AppendCBORHead(b, majorArray, 4)
	b = appendBytes(b, protected)
	b = AppendCBORHead(b, majorMap, 0)
	b = appendBytes(b, payload)
	return appendBytes(b, sig), nil
}

// Sign1 is a decoded COSE_Sign1 message.
type Sign1 struct {
	Alg       Algorithm
	KID       string
	Payload   []byte
	Signature []byte

	// protected is the protected header as received: the Sig_structure
	// covers these bytes, not a re-encoding of them. It is nil for a
	// Sign1 built by hand, whose header is then encoded from Alg and KID.
	protected []byte
}

// DecodeSign1 parses a COSE_Sign1 message without verifying it. It is
// strict, and every failure wraps ErrMalformed:
//
//   - at most MaxSign1Size bytes, and nothing after the message;
//   - an array of 4, tagged 18 or untagged;
//   - CBOR in shortest form with definite lengths (so that the parts the
//     signature does not cover have one encoding only);
//   - a protected header that is a byte string holding a map with alg (-7
//     or -8) and kid (a byte string of 1 to 256 bytes of UTF-8), no
//     duplicate labels, and no critical (crit) header but alg and kid;
//   - an empty unprotected header;
//   - an attached payload (a byte string, not nil) and a 64-byte signature.
//
// The returned message does not share memory with b.
func DecodeSign1(b []byte) (*Sign1, error) {
	if len(b) > MaxSign1Size {
		return nil, malformed("cose: message is %d bytes, more than %d", len(b), MaxSign1Size)
	}
	r := cborReader{data: b}
	if len(b) > 0 && b[0]>>5 == majorTag {
		tag, err := r.expect(majorTag)
		if err != nil {
			return nil, malformed("cose: message tag: %v", err)
		}
		if tag != cborTagSign1 {
			return nil, malformed("cose: message has tag %d, want %d (COSE_Sign1)", tag, cborTagSign1)
		}
	}
	n, err := r.expect(majorArray)
	if err != nil {
		return nil, malformed("cose: message is not an array: %v", err)
	}
	if n != 4 {
		return nil, malformed("cose: message is an array of %d items, want 4", n)
	}
	protected, err := r.bytes()
	if err != nil {
		return nil, malformed("cose: protected header is not a byte string: %v", err)
	}
	if n, err := r.expect(majorMap); err != nil {
		return nil, malformed("cose: unprotected header is not a map: %v", err)
	} else if n != 0 {
		return nil, malformed("cose: unprotected header has %d entries, want none", n)
	}
	if r.remaining() > 0 && r.data[r.off] == 0xf6 { // null
		return nil, malformed("cose: payload is detached (nil)")
	}
	payload, err := r.bytes()
	if err != nil {
		return nil, malformed("cose: payload is not a byte string: %v", err)
	}
	sig, err := r.bytes()
	if err != nil {
		return nil, malformed("cose: signature is not a byte string: %v", err)
	}
	if len(sig) != signatureSize {
		return nil, malformed("cose: signature is %d bytes, want %d", len(sig), signatureSize)
	}
	if r.remaining() != 0 {
		return nil, malformed("cose: %d bytes after the message", r.remaining())
	}
	alg, kid, err := parseProtected(protected)
	if err != nil {
		return nil, err
	}

	// One allocation holds the parts that the message keeps.
	buf := make([]byte, 0, len(protected)+len(payload)+len(sig))
	buf = append(buf, protected...)
	buf = append(buf, payload...)
	buf = append(buf, sig...)
	p, q := len(protected), len(protected)+len(payload)
	return &Sign1{
		Alg:       alg,
		KID:       string(kid),
		Payload:   buf[p:q:q],
		Signature: buf[q:],
		protected: buf[:p:p],
	}, nil
}

// parseProtected parses the protected header map.
func parseProtected(protected []byte) (Algorithm, []byte, error) {
	r := cborReader{data: protected}
	n, err := r.expect(majorMap)
	if err != nil {
		return 0, nil, malformed("cose: protected header is not a map: %v", err)
	}
	if n > maxHeaderCount {
		return 0, nil, malformed("cose: protected header has %d entries, more than %d", n, maxHeaderCount)
	}
	var (
		alg      Algorithm
		kid      []byte
		crit     []int64
		seen     [maxHeaderCount][]byte // encoded labels, to find duplicates
		haveAlg  bool
		haveKID  bool
		haveCrit bool
	)
	for i := range int(n) {
		start := r.off
		m, _, err := r.head()
		if err != nil {
			return 0, nil, malformed("cose: protected header label: %v", err)
		}
		isInt := m == majorUint || m == majorNegInt
		if !isInt && m != majorText {
			return 0, nil, malformed("cose: protected header label is %s, want integer or text string", majorName(m))
		}
		// Re-read the label now that its kind is known.
		r.off = start
		var label int64
		if isInt {
			if label, err = r.int(); err != nil {
				return 0, nil, malformed("cose: protected header label: %v", err)
			}
		} else if err := r.skip(0); err != nil {
			return 0, nil, malformed("cose: protected header label: %v", err)
		}
		// Encodings are unique, so equal labels have equal bytes.
		seen[i] = protected[start:r.off]
		for _, prev := range seen[:i] {
			if string(prev) == string(seen[i]) {
				return 0, nil, malformed("cose: protected header has a duplicate label")
			}
		}
		switch {
		case isInt && label == headerAlg:
			v, err := r.int()
			if err != nil {
				return 0, nil, malformed("cose: alg: %v", err)
			}
			if v != int64(Ed25519) && v != int64(P256) {
				return 0, nil, malformed("cose: unsupported alg %d", v)
			}
			alg, haveAlg = Algorithm(v), true
		case isInt && label == headerKID:
			if kid, err = r.bytes(); err != nil {
				return 0, nil, malformed("cose: kid: %v", err)
			}
			if err := checkKID(kid); err != nil {
				return 0, nil, malformed("cose: %v", err)
			}
			haveKID = true
		case isInt && label == headerCrit:
			if crit, err = parseCrit(&r); err != nil {
				return 0, nil, err
			}
			haveCrit = true
		default:
			if err := r.skip(0); err != nil {
				return 0, nil, malformed("cose: protected header value: %v", err)
			}
		}
	}
	if r.remaining() != 0 {
		return 0, nil, malformed("cose: %d bytes after the protected header map", r.remaining())
	}
	if !haveAlg {
		return 0, nil, malformed("cose: protected header has no alg")
	}
	if !haveKID {
		return 0, nil, malformed("cose: protected header has no kid")
	}
	if haveCrit {
		// Every label in crit must be present (RFC 9052 §3.1); alg and
		// kid always are by now.
		for _, l := range crit {
			if l != headerAlg && l != headerKID {
				return 0, nil, malformed("cose: unknown critical header %d", l)
			}
		}
	}
	return alg, kid, nil
}

// parseCrit parses the value of crit: a non-empty array of labels. Text
// labels are returned as errors, since none is understood.
func parseCrit(r *cborReader) ([]int64, error) {
	n, err := r.expect(majorArray)
	if err != nil {
		return nil, malformed("cose: crit is not an array: %v", err)
	}
	if n == 0 || n > maxHeaderCount {
		return nil, malformed("cose: crit has %d labels, want 1 to %d", n, maxHeaderCount)
	}
	labels := make([]int64, 0, n)
	for range n {
		if r.remaining() > 0 && r.data[r.off]>>5 == majorText {
			return nil, malformed("cose: unknown critical header (text label)")
		}
		l, err := r.int()
		if err != nil {
			return nil, malformed("cose: crit label: %v", err)
		}
		labels = append(labels, l)
	}
	return labels, nil
}

// ToBeSigned returns the Sig_structure ["Signature1", protected,
// external, payload] that the signature covers, with the protected header
// bytes as received.
func (m *Sign1) ToBeSigned(external []byte) ([]byte, error) {
	protected := m.protected
	if protected == nil {
		if m.Alg != Ed25519 && m.Alg != P256 {
			return nil, fmt.Errorf("%w: cose: %v", ErrUnsupportedAlgorithm, m.Alg)
		}
		if err := checkKID([]byte(m.KID)); err != nil {
			return nil, fmt.Errorf("identity: cose: %v", err)
		}
		protected = encodeProtected(m.Alg, m.KID)
	}
	return sigStructure(protected, external, m.Payload), nil
}

// Verify checks that m is signed by pub, with external as the externally
// supplied data. The key's algorithm must be the message's. Failures wrap
// ErrBadSignature.
func (m *Sign1) Verify(pub PublicKey, external []byte) error {
	if pub.Alg != m.Alg {
		return fmt.Errorf("%w: cose: message is signed with %v, key is %v", ErrBadSignature, m.Alg, pub.Alg)
	}
	tbs, err := m.ToBeSigned(external)
	if err != nil {
		return err
	}
	return pub.Verify(tbs, m.Signature)
}
