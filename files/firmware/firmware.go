package firmware

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/ipfs/go-cid"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// Firmware errors a device acts on.
var (
	ErrRollback      = errors.New("files: firmware sequence number is not newer than the running one (rollback refused)")
	ErrWrongClass    = errors.New("files: firmware is for another device class")
	ErrImageMismatch = errors.New("files: firmware image does not match the manifest's digest and size")
	ErrBadSignature  = errors.New("files: firmware manifest is not signed by the vendor key")
)

// Sign signs a manifest with the vendor's key (kid: its account id).
func Sign(k *identity.Key, kid string, m *record.FirmwareManifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	payload, err := record.Marshal(m)
	if err != nil {
		return nil, err
	}
	return identity.SignCOSE(k, kid, payload, record.FirmwareContext)
}

// Decode parses a signed manifest without verifying the signature;
// kid is the signer's account id.
func Decode(raw []byte) (m *record.FirmwareManifest, kid string, err error) {
	m, s, err := record.DecodeFirmware(raw)
	if err != nil {
		return nil, "", err
	}
	return m, s.KID, nil
}

// Verify is a device's check before it installs: the manifest is
// signed by vendorKey, is for its class, and is newer than what it runs.
func Verify(raw []byte, vendorKey identity.PublicKey, class string, runningSeq uint64) (*record.FirmwareManifest, error) {
	s, err := identity.DecodeSign1(raw)
	if err != nil {
		return nil, err
	}
	if err := s.Verify(vendorKey, record.FirmwareContext); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	m, _, err := Decode(raw)
	if err != nil {
		return nil, err
	}
	if m.Class != class {
		return nil, fmt.Errorf("%w: %q, this device is %q", ErrWrongClass, m.Class, class)
	}
	if m.Seq <= runningSeq {
		return nil, fmt.Errorf("%w: offered %d, running %d", ErrRollback, m.Seq, runningSeq)
	}
	return m, nil
}

// ImageChecker hashes an image as it is written (e.g. while it is fetched)
// and checks it against the manifest at the end.
type ImageChecker struct {
	m *record.FirmwareManifest
	h hash.Hash
	n uint64
}

// NewImageChecker returns a writer that checks an image against m.
func NewImageChecker(m *record.FirmwareManifest) *ImageChecker {
	return &ImageChecker{m: m, h: sha256.New()}
}

func (c *ImageChecker) Write(p []byte) (int, error) {
	c.n += uint64(len(p))
	if c.n > c.m.Size {
		return 0, fmt.Errorf("%w: longer than %d bytes", ErrImageMismatch, c.m.Size)
	}
	return c.h.Write(p)
}

// Check reports whether the whole image matched.
func (c *ImageChecker) Check() error {
	if c.n != c.m.Size || subtle.ConstantTimeCompare(c.h.Sum(nil), c.m.Digest) != 1 {
		return ErrImageMismatch
	}
	return nil
}

// CheckImage reads an image and checks it against m.
func CheckImage(m *record.FirmwareManifest, r io.Reader) error {
	c := NewImageChecker(m)
	if _, err := io.Copy(c, r); err != nil {
		return err
	}
	return c.Check()
}

// ParseCID parses a CID string as the ledger and CLI give it.
func ParseCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("files: %q is not a CID: %w", s, err)
	}
	return c, nil
}
