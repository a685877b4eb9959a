// Package modbus brings legacy sensors in over Modbus TCP: a gateway
// polls each configured sensor's registers every interval, decodes them
// per a register map (address, type, word order, scale, unit) into
// readings, and hands them on to be recorded as readings the gateway
// attests (it signs them; the sensor cannot). A sensor that does not
// answer, or answers with an exception or a value that cannot be, is
// reported (Sample.Err, Poller.Status), never filled in.
//
// The Modbus client is github.com/simonvetter/modbus. This package is
// the poller and the register map; recording the attested readings on the
// ledger is the node's (docs/devices.md, issue 20).
package modbus

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/textdur"
)

// Config is the [[modbus.sensor]] part of a gateway's configuration.
type Config struct {
	Sensors []Sensor `toml:"sensor"`
}

// Sensor is one Modbus TCP device and the registers polled on it.
type Sensor struct {
	Name string `toml:"name"` // unique at this gateway: [a-z0-9-], 1-64
	// Device is the sensor's id on the ledger: the did:key it was
	// registered under with attested_by this gateway (docs/devices.md).
	// Its readings carry it; the gateway signs them.
	Device    string     `toml:"device"`
	Address   string     `toml:"address"`  // host:port of its Modbus TCP server (port 502 usually)
	UnitID    uint8      `toml:"unit_id"`  // the Modbus unit (slave) id; 0-247 (default 1)
	Interval  Duration   `toml:"interval"` // poll interval, 100ms to 24h
	Timeout   Duration   `toml:"timeout"`  // per request (default min(interval, 5s))
	Registers []Register `toml:"register"`
}

// Register maps one value on the sensor to a reading.
type Register struct {
	// Reading is the reading's content type: quantity/unit, e.g.
	// "temperature/celsius", "humidity/percent", "power/watt".
	Reading string `toml:"reading"`
	// Table is "holding" (function 3, default) or "input" (function 4).
	Table string `toml:"table"`
	// Address is the first register's number (0-based, as on the wire).
	Address uint16 `toml:"address"`
	// Type is uint16, int16, uint32, int32 or float32 (two registers).
	Type string `toml:"type"`
	// WordOrder of two-register values: "high" (the first register holds
	// the high word, the Modbus convention; default) or "low".
	WordOrder string `toml:"word_order"`
	// Scale and Offset: value = raw × Scale + Offset (Scale 0 means 1).
	Scale  float64 `toml:"scale"`
	Offset float64 `toml:"offset"`
}

// Duration is a time.Duration written as text ("500ms", "5m") in TOML.
type Duration = textdur.Duration

// Limits of a configuration.
const (
	MaxSensors   = 1000
	MaxRegisters = 64 // per sensor
	MinInterval  = 100 * time.Millisecond
	MaxInterval  = 24 * time.Hour
	maxConfig    = 1 << 20
)

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	readingRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,31}/[a-z%][a-z0-9_.%-]{0,31}$`)
)

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("modbus: configuration")

// ParseConfig reads a TOML register map ([[sensor]] tables with
// [[sensor.register]] tables) strictly: unknown keys are errors, and so
// is anything Validate refuses.
func ParseConfig(b []byte) (*Config, error) {
	if len(b) > maxConfig {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrConfig, len(b), maxConfig)
	}
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("%w: unknown keys %s", ErrConfig, strings.Join(keys, ", "))
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the map and fills in defaults (unit id 1, holding
// registers, high word first, scale 1, timeout).
func (c *Config) Validate() error {
	if len(c.Sensors) > MaxSensors {
		return fmt.Errorf("%w: %d sensors, at most %d", ErrConfig, len(c.Sensors), MaxSensors)
	}
	names := map[string]bool{}
	for i := range c.Sensors {
		s := &c.Sensors[i]
		where := fmt.Sprintf("sensor %d (%q)", i, s.Name)
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%w: %s: %s", ErrConfig, where, fmt.Sprintf(format, a...))
		}
		if !nameRE.MatchString(s.Name) {
			return bad("name: want 1-64 of a-z, 0-9 and -, starting with a letter or digit")
		}
		if names[s.Name] {
			return bad("a second sensor of that name")
		}
		names[s.Name] = true
		if s.Device != "" {
			if _, err := identity.ParseDID(s.Device); err != nil {
				return bad("device %q: %v", s.Device, err)
			}
		}
		host, port, err := net.SplitHostPort(s.Address)
		if err != nil || host == "" {
			return bad("address %q: want host:port", s.Address)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return bad("address %q: port %q", s.Address, port)
		}
		if s.UnitID == 0 {
			s.UnitID = 1
		}
		if s.UnitID > 247 {
			return bad("unit_id %d: want 1-247", s.UnitID)
		}
		if s.Interval.Duration < MinInterval || s.Interval.Duration > MaxInterval {
			return bad("interval %v: want %v to %v", s.Interval.Duration, MinInterval, MaxInterval)
		}
		if s.Timeout.Duration == 0 {
			s.Timeout.Duration = min(s.Interval.Duration, 5*time.Second)
		}
		if s.Timeout.Duration < 10*time.Millisecond || s.Timeout.Duration > s.Interval.Duration {
			return bad("timeout %v: want 10ms up to the interval (%v)", s.Timeout.Duration, s.Interval.Duration)
		}
		if len(s.Registers) == 0 || len(s.Registers) > MaxRegisters {
			return bad("%d registers: want 1 to %d", len(s.Registers), MaxRegisters)
		}
		seen := map[string]bool{}
		for j := range s.Registers {
			if err := s.Registers[j].validate(); err != nil {
				return bad("register %d: %v", j, err)
			}
			if seen[s.Registers[j].Reading] {
				return bad("register %d: a second register for %s", j, s.Registers[j].Reading)
			}
			seen[s.Registers[j].Reading] = true
		}
	}
	return nil
}

func (r *Register) validate() error {
	if !readingRE.MatchString(r.Reading) {
		return fmt.Errorf("reading %q: want quantity/unit, e.g. temperature/celsius", r.Reading)
	}
	switch r.Table {
	case "":
		r.Table = "holding"
	case "holding", "input":
	default:
		return fmt.Errorf("table %q: want holding or input", r.Table)
	}
	n := r.Words()
	if n == 0 {
		return fmt.Errorf("type %q: want uint16, int16, uint32, int32 or float32", r.Type)
	}
	if int(r.Address)+n-1 > math.MaxUint16 {
		return fmt.Errorf("address %d: a %s runs past register 65535", r.Address, r.Type)
	}
	switch r.WordOrder {
	case "":
		r.WordOrder = "high"
	case "high", "low":
	default:
		return fmt.Errorf("word_order %q: want high or low", r.WordOrder)
	}
	if n == 1 && r.WordOrder == "low" {
		return fmt.Errorf("word_order low for a one-register %s", r.Type)
	}
	if r.Scale == 0 {
		r.Scale = 1
	}
	if math.IsNaN(r.Scale) || math.IsInf(r.Scale, 0) || math.IsNaN(r.Offset) || math.IsInf(r.Offset, 0) {
		return errors.New("scale and offset must be finite")
	}
	return nil
}

// Words is how many 16-bit registers the register's type takes (0: an
// unknown type).
func (r *Register) Words() int {
	switch r.Type {
	case "uint16", "int16":
		return 1
	case "uint32", "int32", "float32":
		return 2
	}
	return 0
}

// ErrBadValue is what Decode wraps for register contents that are not a
// value: the wrong number of words, a NaN or infinite float.
var ErrBadValue = errors.New("modbus: bad register value")

// Decode turns the register words a sensor answered into the reading's
// value (raw × Scale + Offset). r must have passed Validate.
func (r *Register) Decode(words []uint16) (float64, error) {
	if len(words) != r.Words() {
		return 0, fmt.Errorf("%w: %s at %d: %d registers, want %d", ErrBadValue, r.Type, r.Address, len(words), r.Words())
	}
	var raw float64
	switch r.Type {
	case "uint16":
		raw = float64(words[0])
	case "int16":
		raw = float64(int16(words[0]))
	default:
		hi, lo := words[0], words[1]
		if r.WordOrder == "low" {
			hi, lo = lo, hi
		}
		u := uint32(hi)<<16 | uint32(lo)
		switch r.Type {
		case "uint32":
			raw = float64(u)
		case "int32":
			raw = float64(int32(u))
		case "float32":
			f := math.Float32frombits(u)
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return 0, fmt.Errorf("%w: %s at %d is %v", ErrBadValue, r.Type, r.Address, f)
			}
			raw = float64(f)
		}
	}
	v := raw*r.Scale + r.Offset
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: %s at %d scales to %v", ErrBadValue, r.Type, r.Address, v)
	}
	return v, nil
}
