package testutil

import (
	"io/fs"
	"path/filepath"
)

// DirBytes is the size of the files under dir, what they hold (not the
// blocks they take); files that vanish while it walks are not counted.
func DirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
