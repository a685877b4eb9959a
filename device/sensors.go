package device

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/thingnet/thingnet/reading"
)

// Sensor is a source of readings: a real one on a device, a simulated one
// in the agent.
type Sensor interface {
	// Read measures at now. Seq is left zero (the device numbers readings).
	Read(now time.Time) reading.Reading
}

// Simulated sensor classes.
const (
	ClassTemperature = "temperature"
	ClassMotion      = "motion"
	ClassMeter       = "meter"
)

// SensorClasses are the classes NewSensor simulates.
var SensorClasses = []string{ClassTemperature, ClassMotion, ClassMeter}

// NewSensor returns a simulated sensor of class, seeded by seed:
// temperature (celsius, a slow random walk around 21 °C with a daily
// swing), motion (0 or 1, a person passes now and then) or meter
// (cumulative kWh, growing by a load that varies).
func NewSensor(class string, seed uint64) (Sensor, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	switch class {
	case ClassTemperature:
		return &tempSensor{rng: rng, offset: rng.Float64()*4 - 2}, nil
	case ClassMotion:
		return &motionSensor{rng: rng}, nil
	case ClassMeter:
		return &meterSensor{rng: rng, kwh: math.Round(rng.Float64()*10000) / 10}, nil
	}
	return nil, fmt.Errorf("device: sensor class %q: simulated classes are %v", class, SensorClasses)
}

type tempSensor struct {
	rng    *rand.Rand
	offset float64
	drift  float64
}

func (s *tempSensor) Read(now time.Time) reading.Reading {
	s.drift += (s.rng.Float64() - 0.5) * 0.2
	s.drift = max(-3, min(3, s.drift))
	day := 2 * math.Sin(2*math.Pi*float64(now.Unix()%86400)/86400)
	v := math.Round((21+s.offset+s.drift+day)*8) / 8 // 1/8 °C steps: a half float on the wire
	return reading.Reading{Time: now, ContentType: "temperature/celsius", Value: &v}
}

type motionSensor struct{ rng *rand.Rand }

func (s *motionSensor) Read(now time.Time) reading.Reading {
	v := 0.0
	if s.rng.Float64() < 0.2 {
		v = 1
	}
	return reading.Reading{Time: now, ContentType: "motion/detected", Value: &v}
}

type meterSensor struct {
	rng  *rand.Rand
	kwh  float64
	last time.Time
}

func (s *meterSensor) Read(now time.Time) reading.Reading {
	if !s.last.IsZero() {
		kw := 0.2 + s.rng.Float64()*2
		s.kwh += kw * now.Sub(s.last).Hours()
	}
	s.last = now
	v := math.Round(s.kwh*1000) / 1000
	return reading.Reading{Time: now, ContentType: "energy/kwh", Value: &v}
}
