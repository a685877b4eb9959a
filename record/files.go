package record

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// File tx kinds (docs/files.md). A file manifest is what the ledger knows of
// a shared file: its content id (an IPFS CID), size and type, its owner
// organisation, and, for a private file, the content key wrapped (HPKE) for
// each recipient that holds a "fetch" grant on it.
const (
	KindFilePublish = "file.publish"
	KindFileShare   = "file.share"
	KindFileRevoke  = "file.revoke"
	KindFileRekey   = "file.rekey"
	KindFilePin     = "file.pin"

	// ActionFetch is the grant action that lets a subject receive the
	// wrapped key of a private file: resource "org:<org>/file/<name>" (or
	// "org:<org>/file" for all of the organisation's files).
	ActionFetch = "fetch"

	MaxFileKeys    = 256
	maxSealedKey   = 2048
	maxContentType = 128
	maxCIDLen      = 128
)

const (
	PrefixFile    = "f/" // f/<org>/<name> -> FileManifest
	PrefixFilePin = "p/" // p/<cid>/<pinner did> -> FilePin
)

// FileKey is the state key of a file manifest.
func FileKey(org, name string) []byte { return []byte(PrefixFile + org + "/" + name) }

// FilePinKey is the state key of one node's pin of a CID.
func FilePinKey(cid, pinner string) []byte { return []byte(PrefixFilePin + cid + "/" + pinner) }

// FileResource is the grant resource of a file, for "fetch" grants.
func FileResource(org, name string) string { return "org:" + org + "/file/" + name }

// WrappedKey is a private file's content key sealed with HPKE to one
// recipient device's ledger key (identity.Seal, info FileKeyInfo).
type WrappedKey struct {
	Recipient string `cbor:"1,keyasint" json:"recipient"` // device did
	Suite     uint8  `cbor:"2,keyasint" json:"suite"`     // identity.Suite
	Sealed    []byte `cbor:"3,keyasint" json:"sealed"`
}

// FileKeyInfo is the HPKE info string of a wrapped key: it binds the key to
// the file and its version, so a wrapped key cannot be replayed for another.
func FileKeyInfo(org, name string, version uint64) []byte {
	return []byte("thingnet/file-key/v1\x00" + org + "/" + name + "\x00" + strconv.FormatUint(version, 10))
}

// FilePublish records a new file manifest. Signed by an admin of Org or by
// one of its devices.
type FilePublish struct {
	Org         string       `cbor:"1,keyasint"`
	Name        string       `cbor:"2,keyasint"`
	CID         string       `cbor:"3,keyasint"`
	Size        uint64       `cbor:"4,keyasint"`
	ContentType string       `cbor:"5,keyasint,omitempty"`
	Private     bool         `cbor:"6,keyasint,omitempty"`
	Keys        []WrappedKey `cbor:"7,keyasint,omitempty"`
}

// FileShare adds (or replaces) wrapped keys of a private file; every
// recipient must hold a fetch grant in force.
type FileShare struct {
	Org  string       `cbor:"1,keyasint"`
	Name string       `cbor:"2,keyasint"`
	Keys []WrappedKey `cbor:"3,keyasint"`
}

// FileRevoke removes a recipient's wrapped key: the ledger no longer hands
// it out. Whoever fetched it before keeps what they have; file.rekey makes
// later versions unreadable to them.
type FileRevoke struct {
	Org       string `cbor:"1,keyasint"`
	Name      string `cbor:"2,keyasint"`
	Recipient string `cbor:"3,keyasint"`
}

// FileRekey replaces a private file's content (re-encrypted with a new key)
// and its wrapped keys; the version goes up by one.
type FileRekey struct {
	Org  string       `cbor:"1,keyasint"`
	Name string       `cbor:"2,keyasint"`
	CID  string       `cbor:"3,keyasint"`
	Size uint64       `cbor:"4,keyasint"`
	Keys []WrappedKey `cbor:"5,keyasint"`
}

// FilePinMsg records that the signing device (a gateway) pins CID, or no
// longer does (Unpin).
type FilePinMsg struct {
	CID   string `cbor:"1,keyasint"`
	Unpin bool   `cbor:"2,keyasint,omitempty"`
}

func (*FilePublish) Kind() string { return KindFilePublish }

func (*FileShare) Kind() string { return KindFileShare }

func (*FileRevoke) Kind() string { return KindFileRevoke }

func (*FileRekey) Kind() string { return KindFileRekey }

func (*FilePinMsg) Kind() string { return KindFilePin }

func (m *FilePublish) ValidateBasic() error {
	if err := validateFileName(m.Org, m.Name); err != nil {
		return err
	}
	if err := validateCID(m.CID); err != nil {
		return err
	}
	if err := validateText("content type", m.ContentType, maxContentType); err != nil {
		return err
	}
	if !m.Private && len(m.Keys) > 0 {
		return errors.New("a public file has no wrapped keys; set private")
	}
	return validateKeys(m.Keys, false)
}

func (m *FileShare) ValidateBasic() error {
	if err := validateFileName(m.Org, m.Name); err != nil {
		return err
	}
	return validateKeys(m.Keys, true)
}

func (m *FileRevoke) ValidateBasic() error {
	if err := validateFileName(m.Org, m.Name); err != nil {
		return err
	}
	return checkDIDSyntax(m.Recipient)
}

func (m *FileRekey) ValidateBasic() error {
	if err := validateFileName(m.Org, m.Name); err != nil {
		return err
	}
	if err := validateCID(m.CID); err != nil {
		return err
	}
	return validateKeys(m.Keys, false)
}

func (m *FilePinMsg) ValidateBasic() error { return validateCID(m.CID) }

func validateFileName(org, name string) error {
	if err := validateOrgID(org); err != nil {
		return err
	}
	if name == "" || len(name) > 128 {
		return fmt.Errorf("file name %q must be 1 to 128 characters", name)
	}
	if strings.Contains(name, "/") {
		return fmt.Errorf("file name %q must not hold '/'", name)
	}
	return validatePathSegment(name)
}

// validateCID checks the syntax of a CID string (multibase, printable,
// bounded); the files package parses it fully.
func validateCID(c string) error {
	if len(c) < 8 || len(c) > maxCIDLen {
		return fmt.Errorf("cid %q must be 8 to %d characters", c, maxCIDLen)
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("cid %q holds %q; want a multibase (base32 or base58) string", c, r)
		}
	}
	return nil
}

// validateKeys checks wrapped keys: recipients sorted, distinct, at most
// maxFileKeys, sealed keys bounded. Sorted order makes the manifest
// canonical without ranging over a map.
func validateKeys(ks []WrappedKey, nonEmpty bool) error {
	if nonEmpty && len(ks) == 0 {
		return errors.New("no wrapped keys")
	}
	if len(ks) > MaxFileKeys {
		return fmt.Errorf("%d wrapped keys; at most %d", len(ks), MaxFileKeys)
	}
	for i, k := range ks {
		if err := checkDIDSyntax(k.Recipient); err != nil {
			return fmt.Errorf("wrapped key %d: %w", i, err)
		}
		if k.Suite < 1 || k.Suite > 3 {
			return fmt.Errorf("wrapped key %d: HPKE suite %d is not 1, 2 or 3", i, k.Suite)
		}
		if len(k.Sealed) == 0 || len(k.Sealed) > maxSealedKey {
			return fmt.Errorf("wrapped key %d: sealed key is %d bytes; want 1 to %d", i, len(k.Sealed), maxSealedKey)
		}
		if i > 0 && ks[i-1].Recipient >= k.Recipient {
			return fmt.Errorf("wrapped keys must be sorted by recipient, without repeats (%d)", i)
		}
	}
	return nil
}

// FileManifest is a file as the ledger records it.
type FileManifest struct {
	Org         string       `cbor:"1,keyasint" json:"org"`
	Name        string       `cbor:"2,keyasint" json:"name"`
	CID         string       `cbor:"3,keyasint" json:"cid"`
	Size        uint64       `cbor:"4,keyasint" json:"size"`
	ContentType string       `cbor:"5,keyasint,omitempty" json:"content_type,omitempty"`
	Private     bool         `cbor:"6,keyasint,omitempty" json:"private,omitempty"`
	Keys        []WrappedKey `cbor:"7,keyasint,omitempty" json:"keys,omitempty"`
	Owner       string       `cbor:"8,keyasint" json:"owner"` // the signer of file.publish
	Version     uint64       `cbor:"9,keyasint" json:"version"`
	Height      int64        `cbor:"10,keyasint" json:"height"`
	Updated     int64        `cbor:"11,keyasint" json:"updated"`
}

// KeyFor returns the key wrapped for recipient, or nil.
func (f *FileManifest) KeyFor(recipient string) *WrappedKey {
	i := sort.Search(len(f.Keys), func(i int) bool { return f.Keys[i].Recipient >= recipient })
	if i < len(f.Keys) && f.Keys[i].Recipient == recipient {
		return &f.Keys[i]
	}
	return nil
}

// FilePin records that a node pins a CID.
type FilePin struct {
	CID    string `cbor:"1,keyasint" json:"cid"`
	Pinner string `cbor:"2,keyasint" json:"pinner"`
	Height int64  `cbor:"3,keyasint" json:"height"`
}
