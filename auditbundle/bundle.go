// Package auditbundle writes and checks audit bundles: one file holding an
// organisation's devices' history, their readings, every proof those need,
// and the signed headers and validator sets that tie the proofs to one
// header an auditor trusts. Verify checks a bundle offline, with the
// verifiers the rest of thingnet uses (proof.VerifyReading,
// proof.VerifyAnchored, the light client's header verification and
// record.VerifyProof); Export builds one from a node's API, reading as the
// caller's identity. The format is documented in docs/protocol.md, "Audit
// bundles".
package auditbundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/record"
)

const (
	// Format is the value of a bundle's "format" member.
	Format = "thingnet-audit-bundle"
	// Version is the version of the format this package writes and reads.
	Version = 1

	// MaxSize is the largest bundle file, in bytes, Decode reads.
	MaxSize = 1 << 30
	// MaxHeaders, MaxProofs, MaxAnchors, MaxDevices and MaxReadings bound
	// the bundle's tables.
	MaxHeaders  = 100_000
	MaxProofs   = 1_000_000
	MaxAnchors  = 1_000_000
	MaxDevices  = 100_000
	MaxReadings = 2_000_000
	// MaxInclusion is the longest inclusion path (a log of 2^64 entries).
	MaxInclusion = 64
	// MaxHeaderSize is the largest encoded header with its validators.
	MaxHeaderSize = 4 << 20
)

// ErrFormat is wrapped by every error of a bundle that is not well formed.
var ErrFormat = errors.New("auditbundle: malformed bundle")

// Bundle is an audit bundle. Every ledger proof in it is of one state,
// StateHeight, whose app hash is in the header of StateHeight+1; Headers
// hold that header and whatever else the light client needs to reach it
// from the trusted one. Tables refer to each other by position.
type Bundle struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	ChainID string `json:"chain_id"`
	// Created is when the bundle was made (Unix ms, the exporter's clock);
	// Exporter who made it (the identity it read as, "" anonymous). Both
	// are claims: nothing in the bundle proves them.
	Created  int64  `json:"created"`
	Exporter string `json:"exporter,omitempty"` // set with Signature
	// Org, From and To are what was exported: the organisation's devices'
	// readings timed in [From, To) (Unix ms).
	Org  string `json:"org"`
	From int64  `json:"from"`
	To   int64  `json:"to"`
	// StateHeight is the ledger state every proof is of.
	StateHeight int64 `json:"state_height"`
	// TrustHeight is the header the exporter built the header chain from:
	// an auditor's --trust at that height (or at StateHeight+1, or at
	// any header of the bundle above it) verifies with the headers given.
	TrustHeight int64 `json:"trust_height"`

	Headers  []Header        `json:"headers"`  // ascending height, each once
	Proofs   []*record.Proof `json:"proofs"`   // of StateHeight, ascending key, each once, each referred to
	Anchors  []Anchor        `json:"anchors"`  // ascending (gateway, size), each once
	Devices  []Device        `json:"devices"`  // ascending id
	Readings []Reading       `json:"readings"` // ascending (gateway, index), each once

	// Signature, with Exporter (a did:key), is the exporter's signature
	// (identity.Key.Sign) of SigningMessage: it makes the claims no proof
	// covers (Created, Exporter, TrustHeight, the time range, the
	// withheld and refused messages) the exporter's word, and any change
	// to the file detectable. Absent, the bundle is anonymous (Exporter
	// empty).
	Signature []byte `json:"signature,omitempty"`
}

// signingContext separates bundle signatures from anything else a key signs.
const signingContext = "thingnet/audit-bundle/v1"

// SigningMessage is what the exporter signs: the context string, a zero
// byte and the SHA-256 of the bundle's encoding without its signature.
func (b *Bundle) SigningMessage() ([]byte, error) {
	c := *b
	c.Signature = nil
	enc, err := c.Encode()
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(enc)
	return append([]byte(signingContext+"\x00"), h[:]...), nil
}

// Sign sets Exporter to k's id and signs the bundle.
func (b *Bundle) Sign(k *identity.Key) error {
	b.Exporter = k.ID()
	msg, err := b.SigningMessage()
	if err != nil {
		return err
	}
	b.Signature, err = k.Sign(msg)
	return err
}

// VerifySignature checks the exporter's signature, if any: a bundle that
// names an exporter must carry its valid signature.
func (b *Bundle) VerifySignature() error {
	if b.Exporter == "" && b.Signature == nil {
		return nil
	}
	if b.Signature == nil {
		return fmt.Errorf("it names its exporter %s but is not signed", b.Exporter)
	}
	pub, err := identity.ParseDID(b.Exporter)
	if err != nil {
		return fmt.Errorf("its exporter %q: %v", b.Exporter, err)
	}
	msg, err := b.SigningMessage()
	if err != nil {
		return err
	}
	if err := pub.Verify(msg, b.Signature); err != nil {
		return fmt.Errorf("the exporter's signature does not check: %v", err)
	}
	return nil
}

// Header is a signed header and the validator set that signed it, exactly
// as GET /v1/headers/{height} answers it (CometBFT's JSON encoding).
type Header struct {
	client.HeaderResponse
}

// MarshalJSON is CometBFT's JSON encoding of the header and its validators.
func (h Header) MarshalJSON() ([]byte, error) {
	return cmtjson.Marshal(&h.HeaderResponse)
}

// UnmarshalJSON decodes with CometBFT's JSON decoder, refusing anything
// that does not encode back to the same bytes.
func (h *Header) UnmarshalJSON(b []byte) error {
	if len(b) > MaxHeaderSize {
		return fmt.Errorf("a header is %d bytes, more than %d", len(b), MaxHeaderSize)
	}
	var r client.HeaderResponse
	if err := cmtjson.Unmarshal(b, &r); err != nil {
		return err
	}
	out, err := cmtjson.Marshal(&r)
	if err != nil {
		return err
	}
	if !bytes.Equal(out, b) {
		return errors.New("not in CometBFT's JSON encoding")
	}
	h.HeaderResponse = r
	return nil
}

// Height is the header's height (0 if it has none).
func (h *Header) Height() int64 {
	if h.SignedHeader.Header == nil {
		return 0
	}
	return h.SignedHeader.Height
}

// Anchor is a data anchor record and its proof (Proofs[Proof], key
// L/<gateway>/<size>).
type Anchor struct {
	record.Anchor
	Proof int `json:"proof"`
}

// Device is one exported device: its record (Proofs[Record], key d/<id>)
// and its whole history (Proofs[History[i]], key h/<id>/<i+1>).
type Device struct {
	ID      string `json:"id"`
	Record  int    `json:"record"`
	History []int  `json:"history"`
	// Refused, when set, is why the exporter could not list the device's
	// readings (an identity that may not read them): the bundle has none.
	Refused *proof.Unavailable `json:"refused,omitempty"`
	// Erasures are the device's erasure records (Proofs[Erasures[i]], key
	// er/<seq>, ascending seq) whose range meets the bundle's: why
	// readings of the range may be missing or erased.
	Erasures []int `json:"erasures,omitempty"`
}

// Reading is one log entry: a reading proof (proof.Reading) whose ledger
// proofs are in the tables. With Envelope it is a reading in full and
// Signer refers to its signer's proofs (event, next); without, Withheld
// says why (withheld: the exporter may not read it; erased) and only its
// EntryHash and place in the log are proved.
type Reading struct {
	Device     string             `json:"device"` // as listed; checked against the envelope when there is one
	Gateway    string             `json:"gateway"`
	Index      uint64             `json:"index"`
	Envelope   []byte             `json:"envelope,omitempty"`
	EntryHash  []byte             `json:"entry_hash,omitempty"`
	Withheld   *proof.Unavailable `json:"withheld,omitempty"`
	AuthHeight int64              `json:"auth_height,omitempty"`
	ReceivedAt int64              `json:"received_at,omitempty"` // the entry's receive time (layout 3), Unix ms
	Anchor     int                `json:"anchor"`
	Inclusion  [][]byte           `json:"inclusion"`
	Signer     []int              `json:"signer,omitempty"`
}

// Encode writes b in its one encoding: the JSON of these types, members
// in the order declared, no insignificant white space, a final newline.
func (b *Bundle) Encode() ([]byte, error) {
	out, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Decode reads a bundle strictly: at most MaxSize bytes, no unknown or
// duplicated members, nothing but the encoding Encode writes (one byte
// changed anywhere that still decodes is then a different bundle, which
// Verify refuses), tables within their bounds and referring only to
// entries that exist. It does not verify anything (Verify does).
func Decode(data []byte) (*Bundle, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrFormat, len(data), MaxSize)
	}
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if head.Format != Format {
		return nil, fmt.Errorf("%w: format %q, not %q", ErrFormat, head.Format, Format)
	}
	if head.Version != Version {
		return nil, fmt.Errorf("%w: version %d; this program reads version %d", ErrFormat, head.Version, Version)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	again, err := b.Encode()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if !bytes.Equal(again, data) {
		at := 0
		for at < len(again) && at < len(data) && again[at] == data[at] {
			at++
		}
		return nil, fmt.Errorf("%w: not in the bundle encoding (differs at byte %d: %s)", ErrFormat, at, near(data, at))
	}
	return &b, nil
}

// near names what is around byte at of data, for an error.
func near(data []byte, at int) string {
	lo, hi := max(at-40, 0), min(at+40, len(data))
	return fmt.Sprintf("%q", data[lo:hi])
}

// check checks the bundle's shape: bounds, order, references.
func (b *Bundle) check() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrFormat}, a...)...) }
	switch {
	case b.Format != Format || b.Version != Version:
		return bad("format %q version %d", b.Format, b.Version)
	case b.ChainID == "":
		return bad("no chain id")
	case b.StateHeight <= 0:
		return bad("state height %d is not positive", b.StateHeight)
	case b.TrustHeight <= 0:
		return bad("trust height %d is not positive", b.TrustHeight)
	case b.To != 0 && b.To < b.From:
		return bad("time range [%d, %d) is empty", b.From, b.To)
	case len(b.Headers) > MaxHeaders:
		return bad("%d headers, more than %d", len(b.Headers), MaxHeaders)
	case len(b.Proofs) > MaxProofs:
		return bad("%d proofs, more than %d", len(b.Proofs), MaxProofs)
	case len(b.Anchors) > MaxAnchors:
		return bad("%d anchors, more than %d", len(b.Anchors), MaxAnchors)
	case len(b.Devices) > MaxDevices:
		return bad("%d devices, more than %d", len(b.Devices), MaxDevices)
	case len(b.Readings) > MaxReadings:
		return bad("%d readings, more than %d", len(b.Readings), MaxReadings)
	}
	for i := range b.Headers {
		h := &b.Headers[i]
		if h.SignedHeader.Header == nil || h.SignedHeader.Commit == nil || len(h.Validators) == 0 {
			return bad("header %d (position %d): the header, its commit or its validators are missing", h.Height(), i)
		}
		if i > 0 && h.Height() <= b.Headers[i-1].Height() {
			return bad("header %d follows header %d: headers must be in ascending height, each once", h.Height(), b.Headers[i-1].Height())
		}
	}
	used := make([]bool, len(b.Proofs))
	ref := func(what string, i int) error {
		if i < 0 || i >= len(b.Proofs) {
			return bad("%s refers to proof %d, not in the bundle", what, i)
		}
		used[i] = true
		return nil
	}
	for i, p := range b.Proofs {
		if p == nil {
			return bad("proof %d is null", i)
		}
		if p.Height != b.StateHeight {
			return bad("proof %d (key %q) is of height %d, not the state height %d", i, p.Key, p.Height, b.StateHeight)
		}
		if p.Value == nil {
			return bad("proof %d (key %q) proves an absence: a bundle holds records only", i, p.Key)
		}
		if i > 0 && bytes.Compare(b.Proofs[i-1].Key, p.Key) >= 0 {
			return bad("proof %d (key %q): proofs must be in ascending key order, each key once", i, p.Key)
		}
	}
	for i, a := range b.Anchors {
		if err := ref(fmt.Sprintf("anchor %d", i), a.Proof); err != nil {
			return err
		}
		if i > 0 {
			p := b.Anchors[i-1]
			if p.Gateway > a.Gateway || (p.Gateway == a.Gateway && p.Size >= a.Size) {
				return bad("anchor %d (%s, size %d): anchors must be in ascending (gateway, size), each once", i, a.Gateway, a.Size)
			}
		}
	}
	for i, d := range b.Devices {
		if d.ID == "" || (i > 0 && b.Devices[i-1].ID >= d.ID) {
			return bad("device %d (%q): devices must have ids, in ascending order, each once", i, d.ID)
		}
		if err := ref("device "+d.ID+"'s record", d.Record); err != nil {
			return err
		}
		for j, h := range d.History {
			if err := ref(fmt.Sprintf("device %s's history event %d", d.ID, j+1), h); err != nil {
				return err
			}
		}
		for j, e := range d.Erasures {
			if err := ref(fmt.Sprintf("device %s's erasure %d", d.ID, j), e); err != nil {
				return err
			}
		}
	}
	for i := range b.Readings {
		r := &b.Readings[i]
		name := fmt.Sprintf("reading %d (gateway %s, index %d)", i, r.Gateway, r.Index)
		if i > 0 {
			p := &b.Readings[i-1]
			if p.Gateway > r.Gateway || (p.Gateway == r.Gateway && p.Index >= r.Index) {
				return bad("%s: readings must be in ascending (gateway, index), each once", name)
			}
		}
		if r.Anchor < 0 || r.Anchor >= len(b.Anchors) {
			return bad("%s refers to anchor %d, not in the bundle", name, r.Anchor)
		}
		if len(r.Inclusion) > MaxInclusion {
			return bad("%s: an inclusion path of %d hashes", name, len(r.Inclusion))
		}
		switch {
		case r.Envelope != nil:
			if r.Withheld != nil || r.EntryHash != nil || len(r.Signer) != 2 {
				return bad("%s: a reading in full has its envelope and its two signer proofs, and no entry hash or withheld", name)
			}
			for _, s := range r.Signer {
				if err := ref(name+"'s signer", s); err != nil {
					return err
				}
			}
		case r.Withheld == nil || r.EntryHash == nil || r.Signer != nil:
			return bad("%s: an entry without its envelope has its entry hash and why it is withheld, and no signer proofs", name)
		case r.Withheld.Code != proof.CodeWithheld && r.Withheld.Code != proof.CodeErased:
			return bad("%s: withheld code %q is neither %q nor %q", name, r.Withheld.Code, proof.CodeWithheld, proof.CodeErased)
		}
	}
	for i, u := range used {
		if !u {
			return bad("proof %d (key %q) is not referred to", i, b.Proofs[i].Key)
		}
	}
	return nil
}
