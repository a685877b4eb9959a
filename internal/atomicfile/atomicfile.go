// Package atomicfile writes a file so that a crash leaves either its old
// contents or its new ones: a temporary file in the same directory,
// fsync, rename, fsync of the directory. It uses only os: the device side
// (32-bit ARM and MIPS builds) uses it too.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces path with b durably, creating its directory (0700):
// a power cut leaves the old file or the new one, never a mix, and the new
// one's name is synced with its directory.
func WriteFile(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("syncing the directory of %s: %w", path, err)
		}
	}
	return nil
}
