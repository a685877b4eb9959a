// Package textdur holds Duration, a time.Duration that configuration
// files (TOML, JSON) write as text: "500ms", "10s", "5m", "168h".
package textdur

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written as text, as time.ParseDuration
// reads it.
type Duration struct{ time.Duration }

// UnmarshalText reads a Go duration ("1m30s").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is no duration: write it as 500ms, 10s, 5m or 2h", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
