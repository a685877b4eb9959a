package message

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// FileWindowStore keeps a device's replay windows in one small file,
// rewritten atomically (write, fsync, rename) at each change: for devices,
// whose senders are few, so that a restarted device still refuses messages
// it took before (a lying gateway cannot replay them).
type FileWindowStore struct {
	path string
	mu   sync.Mutex
	m    map[string][]byte
}

// OpenFileWindowStore reads path if it exists.
func OpenFileWindowStore(path string) (*FileWindowStore, error) {
	s := &FileWindowStore{path: path, m: map[string][]byte{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &s.m); err != nil {
		return nil, fmt.Errorf("mesh: replay state %s is damaged: %w", path, err)
	}
	return s, nil
}

// LoadWindow returns the saved window of key, or nil.
func (s *FileWindowStore) LoadWindow(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key], nil
}

// SaveWindow records key's window and rewrites the file.
func (s *FileWindowStore) SaveWindow(key string, w []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.m[key]
	s.m[key] = w
	if err := s.write(); err != nil {
		if had {
			s.m[key] = old
		} else {
			delete(s.m, key)
		}
		return err
	}
	return nil
}

func (s *FileWindowStore) write() error {
	b, err := json.Marshal(s.m)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".replay-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.path)
}
