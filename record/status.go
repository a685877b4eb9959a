package record

import (
	"fmt"
	"math"
)

// StatusReport is what a device chooses to report of its health: the
// Bytes of a reading of content type ContentStatus, signed, stored and
// anchored like any reading (docs/management.md, "Fleet health"). Every
// field is optional.
type StatusReport struct {
	Battery  *float64 `cbor:"1,keyasint,omitempty" json:"battery,omitempty"`  // percent, 0..100
	Signal   *float64 `cbor:"2,keyasint,omitempty" json:"signal,omitempty"`   // dBm
	Uptime   uint64   `cbor:"3,keyasint,omitempty" json:"uptime_s,omitempty"` // seconds since boot
	FreeMem  uint64   `cbor:"4,keyasint,omitempty" json:"free_mem,omitempty"` // bytes
	Firmware string   `cbor:"5,keyasint,omitempty" json:"firmware,omitempty"` // the version it runs
	WakeS    uint64   `cbor:"6,keyasint,omitempty" json:"wake_s,omitempty"`   // its wake interval in force
}

// MaxStatusReport bounds a status report's CBOR.
const MaxStatusReport = 512

// Validate checks the fields.
func (s *StatusReport) Validate() error {
	if s.Battery != nil && (math.IsNaN(*s.Battery) || *s.Battery < 0 || *s.Battery > 100) {
		return fmt.Errorf("battery %v: want a percent, 0 to 100", *s.Battery)
	}
	if s.Signal != nil && (math.IsNaN(*s.Signal) || math.IsInf(*s.Signal, 0)) {
		return fmt.Errorf("signal %v: want a finite number of dBm", *s.Signal)
	}
	return validateText("firmware", s.Firmware, 128)
}

// DecodeStatusReport parses a status report strictly.
func DecodeStatusReport(b []byte) (*StatusReport, error) {
	if len(b) > MaxStatusReport {
		return nil, fmt.Errorf("status report is %d bytes; at most %d", len(b), MaxStatusReport)
	}
	var s StatusReport
	if err := Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("status report: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("status report: %w", err)
	}
	return &s, nil
}
