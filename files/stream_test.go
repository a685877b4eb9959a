package files

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// patternReader yields n bytes of a cheap pseudo-random stream.
type patternReader struct {
	n, off int64
	x      uint64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		p.x ^= p.x << 13
		p.x ^= p.x >> 7
		p.x ^= p.x << 17
		b[i] = byte(p.x)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// TestDecryptToFileMemory: a 64 MiB private file is decrypted to disk
// while it is encrypted (streamed through a pipe), with the bytes
// allocated meanwhile a small bound, far below the file's size.
func TestDecryptToFileMemory(t *testing.T) {
	const size = 64 << 20
	key, _ := NewContentKey()
	src := &patternReader{n: size, x: 88172645463325252}
	want := sha256.New()
	pr, pw := io.Pipe()
	dst := filepath.Join(t.TempDir(), "big.bin")
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	go func() {
		_, err := Encrypt(pw, io.TeeReader(src, want), key)
		pw.CloseWithError(err)
	}()
	n, err := DecryptToFile(dst, pr, key)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Fatalf("decrypted %d bytes; want %d", n, size)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB while encrypting and decrypting %d MiB", alloc>>10, size>>20)
	if alloc > 4<<20 {
		t.Errorf("allocated %d KiB for a %d MiB file; want at most 4 MiB (memory must not grow with the file)", alloc>>10, size>>20)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := sha256.New()
	if _, err := io.Copy(got, f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Error("the decrypted file differs from the plaintext")
	}
}

// TestDecryptToFileRefuses: a truncated, reordered or altered ciphertext,
// or a wrong key, leaves no output file (and no temporary one), and a file
// already at the path is left as it was.
func TestDecryptToFileRefuses(t *testing.T) {
	key, _ := NewContentKey()
	plain := make([]byte, 3*SegmentSize+100)
	(&patternReader{n: int64(len(plain)), x: 7}).Read(plain)
	var ct bytes.Buffer
	if _, err := Encrypt(&ct, bytes.NewReader(plain), key); err != nil {
		t.Fatal(err)
	}
	c := ct.Bytes()
	seg := SegmentSize + gcmOverhead
	body := c[headerSize:]
	reordered := append(append(append(bytes.Clone(c[:headerSize]), body[seg:2*seg]...), body[:seg]...), body[2*seg:]...)
	altered := bytes.Clone(c)
	altered[headerSize+seg+5] ^= 1
	other, _ := NewContentKey()
	for _, tc := range []struct {
		name string
		ct   []byte
		key  []byte
	}{
		{"truncated at a segment boundary", c[:headerSize+3*seg], key},
		{"truncated mid-segment", c[:len(c)-50], key},
		{"header only", c[:headerSize], key},
		{"reordered", reordered, key},
		{"altered", altered, key},
		{"wrong key", c, other},
	} {
		dir := t.TempDir()
		dst := filepath.Join(dir, "out.bin")
		if _, err := DecryptToFile(dst, bytes.NewReader(tc.ct), tc.key); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v; want ErrCorrupt", tc.name, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: left %d files in the directory (%s); want none", tc.name, len(ents), ents[0].Name())
		}
		// A file already there stays as it was.
		os.WriteFile(dst, []byte("old"), 0o600)
		DecryptToFile(dst, bytes.NewReader(tc.ct), tc.key) //nolint:errcheck
		if b, _ := os.ReadFile(dst); string(b) != "old" {
			t.Errorf("%s: the existing file became %d bytes", tc.name, len(b))
		}
	}
	// A reader that fails mid-way (the download broke) leaves nothing either.
	dir := t.TempDir()
	broken := io.MultiReader(bytes.NewReader(c[:len(c)/2]), iotestErrReader{})
	if _, err := DecryptToFile(filepath.Join(dir, "out.bin"), broken, key); err == nil {
		t.Error("a broken download decrypted")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a broken download left %d files", len(ents))
	}
	dst := filepath.Join(t.TempDir(), "ok.bin")
	if n, err := DecryptToFile(dst, bytes.NewReader(c), key); err != nil || n != int64(len(plain)) {
		t.Fatalf("the intact file: %d, %v", n, err)
	}
	if b, _ := os.ReadFile(dst); !bytes.Equal(b, plain) {
		t.Error("the intact file decrypted to other bytes")
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
