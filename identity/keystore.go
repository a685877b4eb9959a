package identity

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"
)

// Key file format constants.
const (
	keyFileVersion   = 1
	keyFileExt       = ".json"
	keyFileKDF       = "scrypt"
	keyFileCipher    = "xchacha20-poly1305"
	maxKeyFileSize   = 64 << 10
	maxCiphertext    = 4 << 10
	maxKeyNameLength = 64

	// DefaultScryptN is the scrypt cost used when Keystore.ScryptN is 0.
	DefaultScryptN = 1 << 15
	minScryptN     = 1 << 10
	maxScryptN     = 1 << 20
	scryptR        = 8
	scryptP        = 1
	maxScryptR     = 16
	maxScryptP     = 4
	maxScryptNR    = 1 << 21 // bounds scrypt's memory, 128*N*r bytes, to 256 MiB
	saltSize       = 16
	keySize        = chacha20poly1305.KeySize
)

// Keystore is a directory of passphrase-encrypted key files, <name>.json,
// each readable by its owner only. Key names match [a-zA-Z0-9._-]{1,64}.
//
// A key file is JSON:
//
//	{"version": 1, "name": ..., "alg": "ed25519", "id": did:key,
//	 "kdf": "scrypt", "kdfparams": {"n": 32768, "r": 8, "p": 1, "salt": base64},
//	 "cipher": "xchacha20-poly1305", "nonce": base64, "ciphertext": base64}
//
// where the ciphertext seals the PKCS#8 private key with the id as
// additional data, under a key derived from the passphrase by scrypt. An
// empty passphrase is allowed (local demo networks) and goes through the
// same format.
type Keystore struct {
	Dir     string
	ScryptN int // scrypt cost, a power of two from 1024 to 1<<20; 0 means DefaultScryptN
}

// KeyInfo describes a key in a keystore.
type KeyInfo struct {
	Name string    `json:"name"`
	Alg  Algorithm `json:"alg"`
	ID   string    `json:"id"`
	Path string    `json:"path"`
}

type keyFile struct {
	Version    int       `json:"version"`
	Name       string    `json:"name"`
	Alg        string    `json:"alg"`
	ID         string    `json:"id"`
	KDF        string    `json:"kdf"`
	KDFParams  kdfParams `json:"kdfparams"`
	Cipher     string    `json:"cipher"`
	Nonce      []byte    `json:"nonce"`
	Ciphertext []byte    `json:"ciphertext"`
}

type kdfParams struct {
	N    int    `json:"n"`
	R    int    `json:"r"`
	P    int    `json:"p"`
	Salt []byte `json:"salt"`
}

// checkName checks a key name against [a-zA-Z0-9._-]{1,64}.
func checkName(name string) error {
	if len(name) == 0 || len(name) > maxKeyNameLength {
		return fmt.Errorf("%w: %q is %d bytes, want 1 to %d", ErrInvalidName, name, len(name), maxKeyNameLength)
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%w: %q has a character outside [a-zA-Z0-9._-]", ErrInvalidName, name)
		}
	}
	return nil
}

// checkScrypt checks scrypt parameters, bounding the work a key file can
// ask for.
func checkScrypt(n, r, p int) error {
	if n < minScryptN || n > maxScryptN || n&(n-1) != 0 {
		return fmt.Errorf("scrypt n %d is not a power of two from %d to %d", n, minScryptN, maxScryptN)
	}
	if r < 1 || r > maxScryptR || p < 1 || p > maxScryptP || n*r > maxScryptNR {
		return fmt.Errorf("scrypt r %d, p %d out of range for n %d", r, p, n)
	}
	return nil
}

// path returns the file of the named key.
func (ks Keystore) path(name string) (string, error) {
	if ks.Dir == "" {
		return "", errors.New("identity: keystore has no directory")
	}
	if err := checkName(name); err != nil {
		return "", err
	}
	return filepath.Join(ks.Dir, name+keyFileExt), nil
}

// Save encrypts k under passphrase and writes it as the key name. It fails
// with ErrKeyExists if the keystore has a key of that name, and never
// replaces one: the file is written to a temporary file, synced, then
// linked into place.
func (ks Keystore) Save(name string, k *Key, passphrase []byte) (KeyInfo, error) {
	path, err := ks.path(name)
	if err != nil {
		return KeyInfo{}, err
	}
	if k == nil {
		return KeyInfo{}, fmt.Errorf("%w: nil key", ErrInvalidKey)
	}
	n := ks.ScryptN
	if n == 0 {
		n = DefaultScryptN
	}
	if err := checkScrypt(n, scryptR, scryptP); err != nil {
		return KeyInfo{}, fmt.Errorf("identity: keystore: %v", err)
	}
	// Fail early, before the expensive key derivation; the link below is
	// what guarantees that no key is ever replaced.
	if _, err := os.Lstat(path); err == nil {
		return KeyInfo{}, fmt.Errorf("%w: %s", ErrKeyExists, path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return KeyInfo{}, fmt.Errorf("identity: keystore: %w", err)
	}

	der, err := MarshalPrivateKey(k)
	if err != nil {
		return KeyInfo{}, err
	}
	defer clear(der)
	kf := keyFile{
		Version:   keyFileVersion,
		Name:      name,
		Alg:       k.Alg().String(),
		ID:        k.ID(),
		KDF:       keyFileKDF,
		KDFParams: kdfParams{N: n, R: scryptR, P: scryptP, Salt: make([]byte, saltSize)},
		Cipher:    keyFileCipher,
		Nonce:     make([]byte, chacha20poly1305.NonceSizeX),
	}
	if _, err := rand.Read(kf.KDFParams.Salt); err != nil {
		return KeyInfo{}, fmt.Errorf("identity: keystore: %w", err)
	}
	if _, err := rand.Read(kf.Nonce); err != nil {
		return KeyInfo{}, fmt.Errorf("identity: keystore: %w", err)
	}
	aead, err := kf.aead(passphrase)
	if err != nil {
		return KeyInfo{}, err
	}
	kf.Ciphertext = aead.Seal(nil, kf.Nonce, der, []byte(kf.ID))
	data, err := json.MarshalIndent(&kf, "", "  ")
	if err != nil {
		return KeyInfo{}, fmt.Errorf("identity: keystore: %w", err)
	}
	data = append(data, '\n')

	if err := os.MkdirAll(ks.Dir, 0o700); err != nil {
		return KeyInfo{}, fmt.Errorf("identity: keystore: %w", err)
	}
	if err := writeNewFile(path, data); err != nil {
		return KeyInfo{}, err
	}
	return KeyInfo{Name: name, Alg: k.Alg(), ID: kf.ID, Path: path}, nil
}

// writeNewFile atomically creates path, mode 0600, holding data; it fails
// with ErrKeyExists if path exists.
func writeNewFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("identity: keystore: %w", err)
	}
	defer func() {
		if cerr := tmp.Close(); cerr != nil && !errors.Is(cerr, os.ErrClosed) && err == nil {
			err = fmt.Errorf("identity: keystore: %w", cerr)
		}
		// After a successful link the key also has its final name;
		// the temporary name goes in every case.
		if rerr := os.Remove(tmp.Name()); rerr != nil && err == nil {
			err = fmt.Errorf("identity: keystore: %w", rerr)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("identity: keystore: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("identity: keystore: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("identity: keystore: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("identity: keystore: %w", err)
	}
	// A hard link, unlike a rename, never replaces an existing file.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrKeyExists, path)
		}
		return fmt.Errorf("identity: keystore: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("identity: keystore: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("identity: keystore: sync %s: %w", dir, err)
	}
	return nil
}

// Load decrypts the named key. It fails with ErrKeyNotFound if there is no
// such key and ErrWrongPassphrase if the file does not decrypt.
func (ks Keystore) Load(name string, passphrase []byte) (*Key, error) {
	path, err := ks.path(name)
	if err != nil {
		return nil, err
	}
	kf, err := readKeyFile(path, name)
	if err != nil {
		return nil, err
	}
	return kf.decrypt(path, passphrase)
}

// LoadKeyFile decrypts the key file at path, like Keystore.Load.
func LoadKeyFile(path string, passphrase []byte) (*Key, error) {
	kf, err := readKeyFile(path, "")
	if err != nil {
		return nil, err
	}
	return kf.decrypt(path, passphrase)
}

// Info describes the named key without decrypting it.
func (ks Keystore) Info(name string) (KeyInfo, error) {
	path, err := ks.path(name)
	if err != nil {
		return KeyInfo{}, err
	}
	kf, err := readKeyFile(path, name)
	if err != nil {
		return KeyInfo{}, err
	}
	return kf.info(path), nil
}

// List describes the keys of the keystore, sorted by name. Files that are
// not key files are skipped; a keystore directory that does not exist
// holds no keys.
func (ks Keystore) List() ([]KeyInfo, error) {
	if ks.Dir == "" {
		return nil, errors.New("identity: keystore has no directory")
	}
	entries, err := os.ReadDir(ks.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("identity: keystore: %w", err)
	}
	var infos []KeyInfo
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), keyFileExt)
		if !ok || !e.Type().IsRegular() || checkName(name) != nil {
			continue
		}
		info, err := ks.Info(name)
		if errors.Is(err, ErrInvalidKeyFile) || errors.Is(err, ErrKeyNotFound) {
			continue // not a key file, or removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	slices.SortFunc(infos, func(a, b KeyInfo) int { return strings.Compare(a.Name, b.Name) })
	return infos, nil
}

// readKeyFile reads and validates a key file. If name is not empty, the
// file must hold the key of that name.
func readKeyFile(path, name string) (*keyFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: keystore: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("identity: keystore: read %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s is more than %d bytes", ErrInvalidKeyFile, path, maxKeyFileSize)
	}
	var kf keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidKeyFile, path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: %s: data after the key", ErrInvalidKeyFile, path)
	}
	if err := kf.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidKeyFile, path, err)
	}
	if name != "" && kf.Name != name {
		return nil, fmt.Errorf("%w: %s holds key %q", ErrInvalidKeyFile, path, kf.Name)
	}
	return &kf, nil
}

// check validates everything in a key file but the ciphertext.
func (kf *keyFile) check() error {
	if kf.Version != keyFileVersion {
		return fmt.Errorf("version %d, want %d", kf.Version, keyFileVersion)
	}
	if err := checkName(kf.Name); err != nil {
		return err
	}
	alg, err := ParseAlgorithm(kf.Alg)
	if err != nil || alg.String() != kf.Alg {
		return fmt.Errorf("alg %q, want ed25519 or p256", kf.Alg)
	}
	pub, err := ParseDID(kf.ID)
	if err != nil {
		return fmt.Errorf("id: %v", err)
	}
	if pub.Alg != alg {
		return fmt.Errorf("id is a %s key, alg says %s", pub.Alg, alg)
	}
	if kf.KDF != keyFileKDF {
		return fmt.Errorf("kdf %q, want %q", kf.KDF, keyFileKDF)
	}
	p := kf.KDFParams
	if err := checkScrypt(p.N, p.R, p.P); err != nil {
		return err
	}
	if len(p.Salt) != saltSize {
		return fmt.Errorf("salt is %d bytes, want %d", len(p.Salt), saltSize)
	}
	if kf.Cipher != keyFileCipher {
		return fmt.Errorf("cipher %q, want %q", kf.Cipher, keyFileCipher)
	}
	if len(kf.Nonce) != chacha20poly1305.NonceSizeX {
		return fmt.Errorf("nonce is %d bytes, want %d", len(kf.Nonce), chacha20poly1305.NonceSizeX)
	}
	if len(kf.Ciphertext) <= chacha20poly1305.Overhead || len(kf.Ciphertext) > maxCiphertext {
		return fmt.Errorf("ciphertext is %d bytes", len(kf.Ciphertext))
	}
	return nil
}

func (kf *keyFile) info(path string) KeyInfo {
	alg, _ := ParseAlgorithm(kf.Alg) // checked by check
	return KeyInfo{Name: kf.Name, Alg: alg, ID: kf.ID, Path: path}
}

// aead derives the file's key from passphrase.
func (kf *keyFile) aead(passphrase []byte) (cipher.AEAD, error) {
	p := kf.KDFParams
	key, err := scrypt.Key(passphrase, p.Salt, p.N, p.R, p.P, keySize)
	if err != nil {
		return nil, fmt.Errorf("identity: keystore: scrypt: %w", err)
	}
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("identity: keystore: %w", err)
	}
	return aead, nil
}

// decrypt opens the ciphertext and checks that the key is the file's id.
func (kf *keyFile) decrypt(path string, passphrase []byte) (*Key, error) {
	aead, err := kf.aead(passphrase)
	if err != nil {
		return nil, err
	}
	der, err := aead.Open(nil, kf.Nonce, kf.Ciphertext, []byte(kf.ID))
	if err != nil {
		return nil, fmt.Errorf("%w (or %s was altered)", ErrWrongPassphrase, path)
	}
	defer clear(der)
	k, err := ParsePrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidKeyFile, path, err)
	}
	if k.ID() != kf.ID || k.Alg().String() != kf.Alg {
		return nil, fmt.Errorf("%w: %s: decrypted key is %s, file says %s", ErrInvalidKeyFile, path, k.ID(), kf.ID)
	}
	return k, nil
}
