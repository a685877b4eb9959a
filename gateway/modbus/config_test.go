package modbus_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/gateway/modbus"
)

const example = `
[[sensor]]
name = "boiler-3"
address = "10.0.0.7:502"
unit_id = 3
interval = "10s"

  [[sensor.register]]
  reading = "temperature/celsius"
  table = "input"
  address = 30
  type = "int16"
  scale = 0.1

  [[sensor.register]]
  reading = "energy/kwh"
  address = 100
  type = "uint32"
  word_order = "low"

  [[sensor.register]]
  reading = "pressure/bar"
  address = 200
  type = "float32"
`

func TestParseConfig(t *testing.T) {
	c, err := modbus.ParseConfig([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sensors[0]
	if s.Name != "boiler-3" || s.UnitID != 3 || s.Interval.Duration != 10*time.Second || s.Timeout.Duration != 5*time.Second || len(s.Registers) != 3 {
		t.Fatalf("%+v", s)
	}
	if r := s.Registers[1]; r.Table != "holding" || r.WordOrder != "low" || r.Scale != 1 {
		t.Fatalf("defaults: %+v", r)
	}
}

// Each bad map is refused, saying which sensor, which register and what.
func TestParseConfigErrors(t *testing.T) {
	sensor := func(extra, reg string) string {
		return "[[sensor]]\nname = \"s\"\naddress = \"h:502\"\ninterval = \"1s\"\n" + extra + "\n[[sensor.register]]\n" + reg
	}
	ok := "reading = \"temperature/celsius\"\naddress = 1\ntype = \"int16\"\n"
	for cfg, want := range map[string]string{
		sensor("", ok+"colour = 1\n"):  "unknown keys sensor.register.colour",
		sensor("unit_id = 250", ok):    "unit_id 250: want 1-247",
		sensor("timeout = \"2s\"", ok): "timeout 2s: want 10ms up to the interval",
		sensor("", "reading = \"temperature\"\naddress = 1\ntype = \"int16\"\n"): "want quantity/unit",
		sensor("", ok+"table = \"coil\"\n"):                                      `table "coil": want holding or input`,
		sensor("", "reading = \"t/c\"\naddress = 65535\ntype = \"uint32\"\n"):    "runs past register 65535",
		sensor("", "reading = \"t/c\"\naddress = 1\ntype = \"int64\"\n"):         `type "int64"`,
		sensor("", ok+"word_order = \"low\"\n"):                                  "word_order low for a one-register int16",
		sensor("", ok+"word_order = \"middle\"\n"):                               `word_order "middle"`,
		sensor("", ok+"scale = nan\n"):                                           "must be finite",
		"[[sensor]]\nname = \"S!\"\naddress = \"h:502\"\ninterval = \"1s\"\n":    "name: want",
		"[[sensor]]\nname = \"s\"\naddress = \"h\"\ninterval = \"1s\"\n":         "want host:port",
		"[[sensor]]\nname = \"s\"\naddress = \"h:99999\"\ninterval = \"1s\"\n":   `port "99999"`,
		"[[sensor]]\nname = \"s\"\naddress = \"h:502\"\ninterval = \"1ms\"\n":    "interval 1ms: want 100ms",
		"[[sensor]]\nname = \"s\"\naddress = \"h:502\"\ninterval = \"soon\"\n":   "is no duration",
		"[[sensor]]\nname = \"s\"\naddress = \"h:502\"\ninterval = \"1s\"\n":     "0 registers",
		sensor("", ok) + "\n[[sensor.register]]\n" + ok:                          "a second register for temperature/celsius",
		sensor("", ok) + "\n" + sensor("", ok):                                   "a second sensor of that name",
		"[[sensor]\n":                                                            "modbus: configuration",
	} {
		_, err := modbus.ParseConfig([]byte(cfg))
		if !errors.Is(err, modbus.ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n  %v\n  want an error saying %q", cfg, err, want)
		}
	}
}

func TestDecode(t *testing.T) {
	f := math.Float32bits(2.5)
	for _, c := range []struct {
		r     modbus.Register
		words []uint16
		want  float64
	}{
		{modbus.Register{Type: "uint16", Scale: 1}, []uint16{65535}, 65535},
		{modbus.Register{Type: "int16", Scale: 0.1}, []uint16{0xff9c}, -10}, // -100 × 0.1
		{modbus.Register{Type: "uint32", Scale: 1, WordOrder: "high"}, []uint16{1, 2}, 65538},
		{modbus.Register{Type: "uint32", Scale: 1, WordOrder: "low"}, []uint16{2, 1}, 65538},
		{modbus.Register{Type: "int32", Scale: 1, WordOrder: "high"}, []uint16{0xffff, 0xfffe}, -2},
		{modbus.Register{Type: "float32", Scale: 2, Offset: 1, WordOrder: "high"}, []uint16{uint16(f >> 16), uint16(f)}, 6},
	} {
		got, err := c.r.Decode(c.words)
		if err != nil || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%+v of %v: %v, %v; want %v", c.r, c.words, got, err, c.want)
		}
	}
	nan := math.Float32bits(float32(math.NaN()))
	for _, c := range []struct {
		r     modbus.Register
		words []uint16
	}{
		{modbus.Register{Type: "uint16", Scale: 1}, []uint16{1, 2}},
		{modbus.Register{Type: "float32", Scale: 1, WordOrder: "high"}, []uint16{1}},
		{modbus.Register{Type: "float32", Scale: 1, WordOrder: "high"}, []uint16{uint16(nan >> 16), uint16(nan)}},
		{modbus.Register{Type: "float32", Scale: 1e300, WordOrder: "high"}, []uint16{0x7f7f, 0xffff}},
	} {
		if _, err := c.r.Decode(c.words); !errors.Is(err, modbus.ErrBadValue) {
			t.Errorf("%+v of %v: %v; want ErrBadValue", c.r, c.words, err)
		}
	}
}

// FuzzParseConfig: any input is a valid map or an ErrConfig, never a
// panic; a valid map's registers fit the register space.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("[[sensor]]\nname = \"s\"\naddress = \"h:502\"\ninterval = \"1s\"\n[[sensor.register]]\nreading = \"t/c\"\naddress = 65534\ntype = \"float32\"\n"))
	f.Add([]byte("[[sensor]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := modbus.ParseConfig(b)
		if err != nil {
			if !errors.Is(err, modbus.ErrConfig) {
				t.Fatalf("not an ErrConfig: %v", err)
			}
			return
		}
		for _, s := range c.Sensors {
			for _, r := range s.Registers {
				if r.Words() == 0 || int(r.Address)+r.Words()-1 > 65535 || r.Scale == 0 {
					t.Fatalf("a valid map with %+v", r)
				}
			}
		}
	})
}

// FuzzDecode: register words a sensor sends decode to a finite value or
// ErrBadValue, for every type and word order.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(0), uint16(1), uint16(2), uint8(2), 1.0, 0.0)
	f.Add(uint8(4), uint16(0x7fc0), uint16(0), uint8(2), 1.0, 0.0)
	f.Add(uint8(4), uint16(0x7f7f), uint16(0xffff), uint8(2), 1e300, 0.0)
	f.Fuzz(func(t *testing.T, typ uint8, w0, w1 uint16, n uint8, scale, offset float64) {
		types := []string{"uint16", "int16", "uint32", "int32", "float32"}
		r := modbus.Register{Type: types[int(typ)%len(types)], Scale: scale, Offset: offset, WordOrder: "high"}
		if typ&0x80 != 0 {
			r.WordOrder = "low"
		}
		if scale == 0 || math.IsNaN(scale) || math.IsInf(scale, 0) || math.IsNaN(offset) || math.IsInf(offset, 0) {
			return // Validate refuses these maps
		}
		words := []uint16{w0, w1}[:int(n)%3]
		v, err := r.Decode(words)
		if err != nil {
			if !errors.Is(err, modbus.ErrBadValue) {
				t.Fatalf("not an ErrBadValue: %v", err)
			}
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("%+v of %v: %v", r, words, v)
		}
	})
}
