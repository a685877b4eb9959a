package rules

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/thingnet/thingnet/internal/atomicfile"
)

// StoreDir is where a node keeps the rules added while it runs
// (`thingnet rules add`), inside its home.
const StoreDir = "rules.d"

// ErrNoRule is the error for a rule a store does not hold.
var ErrNoRule = errors.New("rules: no such rule")

// Store holds the rules added to a running node: one rules file (a
// [[rules]] table) per rule in a directory, named by the hex of the
// rule's name, written durably; the node loads them at start beside
// those of thingnet.toml.
type Store struct{ Dir string }

func (s Store) path(name string) string {
	return filepath.Join(s.Dir, hex.EncodeToString([]byte(name))+".toml")
}

// List reads and checks the stored rules, by name.
func (s Store) List(lim Limits) ([]Rule, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return []Rule{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	out := []Rule{}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".toml") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(s.Dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		rs, err := Parse(b, lim)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, rs...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Put stores r (checked), replacing a stored rule of the same name.
func (s Store) Put(r Rule, lim Limits) error {
	if _, err := r.Check(lim); err != nil {
		return err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# added with `thingnet rules add`; remove with `thingnet rules remove %s`\n", r.Name)
	if err := toml.NewEncoder(&b).Encode(File{Rules: []Rule{r}}); err != nil {
		return fmt.Errorf("rules: encoding %q: %w", r.Name, err)
	}
	if err := atomicfile.WriteFile(s.path(r.Name), b.Bytes()); err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	return nil
}

// Remove deletes the stored rule name (ErrNoRule if there is none).
func (s Store) Remove(name string) error {
	err := os.Remove(s.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w %q among the rules added to this node", ErrNoRule, name)
	}
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	return nil
}
