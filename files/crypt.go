package files

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// Private files are encrypted before they are added, so what bitswap moves
// and providers hold is ciphertext (docs/files.md, "Private files"):
//
//	header  = "TNF1" || segment size (u32 BE)
//	segment = AES-256-GCM(key, nonce, plaintext part, aad = header)
//	nonce   = 0x00 0x00 0x00 || counter (u64 BE) || last (0x01 on the final segment, else 0x00)
//
// Every segment but the last holds exactly segment-size plaintext bytes;
// the last holds fewer (possibly none), so a truncated or reordered file
// does not open.
const (
	// SegmentSize is the plaintext bytes per encrypted segment.
	SegmentSize = 64 << 10
	// KeySize is the content key size (AES-256).
	KeySize = 32

	cryptMagic  = "TNF1"
	headerSize  = 8
	maxSegment  = 1 << 20
	gcmOverhead = 16
)

// ErrCorrupt is returned for ciphertext that does not open: wrong key,
// altered, truncated or reordered.
var ErrCorrupt = errors.New("files: encrypted file does not open (wrong key, or altered or truncated)")

// NewContentKey returns a random content key.
func NewContentKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

func segmentNonce(i uint64, last bool) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[3:11], i)
	if last {
		n[11] = 1
	}
	return n
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("files: content key is %d bytes; want %d", len(key), KeySize)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Encrypt writes the encryption of r under key to w and returns the
// ciphertext size.
func Encrypt(w io.Writer, r io.Reader, key []byte) (int64, error) {
	aead, err := newGCM(key)
	if err != nil {
		return 0, err
	}
	hdr := make([]byte, headerSize)
	copy(hdr, cryptMagic)
	binary.BigEndian.PutUint32(hdr[4:], SegmentSize)
	if _, err := w.Write(hdr); err != nil {
		return 0, err
	}
	total := int64(headerSize)
	buf := make([]byte, SegmentSize)
	out := make([]byte, 0, SegmentSize+gcmOverhead)
	for i := uint64(0); ; i++ {
		n, err := io.ReadFull(r, buf)
		last := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !last {
			return total, err
		}
		out = aead.Seal(out[:0], segmentNonce(i, last), buf[:n], hdr)
		if _, err := w.Write(out); err != nil {
			return total, err
		}
		total += int64(len(out))
		if last {
			return total, nil
		}
	}
}

// Decrypter reads the plaintext of an encrypted file.
type Decrypter struct {
	r     io.Reader
	aead  cipher.AEAD
	hdr   []byte
	seg   int
	i     uint64
	buf   []byte
	plain []byte
	done  bool
	err   error
}

// NewDecrypter reads and checks the header of an encrypted file.
func NewDecrypter(r io.Reader, key []byte) (*Decrypter, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, headerSize)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("%w: no header", ErrCorrupt)
	}
	seg, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	return &Decrypter{r: r, aead: aead, hdr: hdr, seg: seg, buf: make([]byte, seg+gcmOverhead)}, nil
}

func parseHeader(hdr []byte) (int, error) {
	if len(hdr) < headerSize || !bytes.Equal(hdr[:4], []byte(cryptMagic)) {
		return 0, fmt.Errorf("%w: not a thingnet encrypted file (magic)", ErrCorrupt)
	}
	seg := binary.BigEndian.Uint32(hdr[4:])
	if seg == 0 || seg > maxSegment {
		return 0, fmt.Errorf("%w: segment size %d", ErrCorrupt, seg)
	}
	return int(seg), nil
}

func (d *Decrypter) Read(p []byte) (int, error) {
	for len(d.plain) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.done {
			return 0, io.EOF
		}
		d.next()
	}
	n := copy(p, d.plain)
	d.plain = d.plain[n:]
	return n, nil
}

func (d *Decrypter) next() {
	n, err := io.ReadFull(d.r, d.buf)
	switch {
	case err == nil:
		// A full segment: not the last one (the writer ends with a short one).
		// Opened in place: a Decrypter allocates nothing per segment.
		pt, oerr := d.aead.Open(d.buf[:0], segmentNonce(d.i, false), d.buf[:n], d.hdr)
		if oerr != nil {
			d.err = ErrCorrupt
			return
		}
		d.plain = pt
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		if n < gcmOverhead {
			d.err = fmt.Errorf("%w: truncated", ErrCorrupt)
			return
		}
		pt, oerr := d.aead.Open(d.buf[:0], segmentNonce(d.i, true), d.buf[:n], d.hdr)
		if oerr != nil {
			d.err = ErrCorrupt
			return
		}
		d.plain, d.done = pt, true
	default:
		d.err = err
		return
	}
	d.i++
}

// DecryptToFile decrypts the encrypted file read from r segment by segment
// (memory stays at one segment, whatever the file's size) into a temporary
// file beside path, and renames it to path only once the whole file has
// opened, the last segment included. On any error — a segment that does
// not open, a truncated or reordered file, r failing — the temporary file
// is removed and path is left as it was. It returns the plaintext size.
func DecryptToFile(path string, r io.Reader, key []byte) (int64, error) {
	d, err := NewDecrypter(r, key)
	if err != nil {
		return 0, err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".part-*")
	if err != nil {
		return 0, fmt.Errorf("files: %w", err)
	}
	n, err := io.Copy(tmp, d)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return 0, fmt.Errorf("files: decrypting to %s: %w", path, err)
	}
	return n, nil
}

// Decrypt returns the plaintext of an encrypted file held in memory.
func Decrypt(ct, key []byte) ([]byte, error) {
	d, err := NewDecrypter(bytes.NewReader(ct), key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(d)
}

// Recipient is a device a content key is wrapped for: its id and its
// current ledger key (record.Device.Key).
type Recipient struct {
	ID  string
	Key identity.PublicKey
}

// RecipientOf returns a device record's recipient.
func RecipientOf(d *record.Device) (Recipient, error) {
	k, err := identity.ParseDID(d.Key)
	if err != nil {
		return Recipient{}, fmt.Errorf("files: device %s key: %w", d.ID, err)
	}
	return Recipient{ID: d.ID, Key: k}, nil
}

// WrapKey seals the content key of file org/name at version for each
// recipient (HPKE to its ledger key's default suite) and returns the
// wrapped keys sorted by recipient, as the ledger wants them.
func WrapKey(key []byte, org, name string, version uint64, rs []Recipient) ([]record.WrappedKey, error) {
	info := record.FileKeyInfo(org, name, version)
	out := make([]record.WrappedKey, 0, len(rs))
	for _, r := range rs {
		suite, pub, err := r.Key.EncryptionKey()
		if err != nil {
			return nil, fmt.Errorf("files: recipient %s: %w", r.ID, err)
		}
		sealed, err := identity.Seal(suite, pub, info, key)
		if err != nil {
			return nil, fmt.Errorf("files: sealing to %s: %w", r.ID, err)
		}
		out = append(out, record.WrappedKey{Recipient: r.ID, Suite: uint8(suite), Sealed: sealed})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Recipient < out[j].Recipient })
	for i := 1; i < len(out); i++ {
		if out[i].Recipient == out[i-1].Recipient {
			return nil, fmt.Errorf("files: recipient %s is listed twice", out[i].Recipient)
		}
	}
	return out, nil
}

// ErrNoKey is returned when the manifest holds no key for the device: it
// has no fetch grant, or its key was revoked.
var ErrNoKey = errors.New("files: the ledger holds no key of this file for this device (no fetch grant, or revoked)")

// UnwrapKey opens the content key that m holds for device id with its key.
func UnwrapKey(m *record.FileManifest, id string, k *identity.Key) ([]byte, error) {
	if !m.Private {
		return nil, fmt.Errorf("files: %s/%s is public; it has no key", m.Org, m.Name)
	}
	w := m.KeyFor(id)
	if w == nil {
		return nil, ErrNoKey
	}
	key, err := k.Open(identity.Suite(w.Suite), record.FileKeyInfo(m.Org, m.Name, m.Version), w.Sealed)
	if err != nil {
		return nil, fmt.Errorf("files: the wrapped key for %s does not open with this key: %w", id, err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("files: the wrapped key is %d bytes; want %d", len(key), KeySize)
	}
	return key, nil
}
