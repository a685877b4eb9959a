package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"sync"
	"time"

	mb "github.com/simonvetter/modbus"
)

// Value is one register's reading in a Sample.
type Value struct {
	Reading string  // content type, e.g. temperature/celsius
	Value   float64 // scaled
}

// Sample is one poll of one sensor: every register's value, or the error
// that stopped the poll (then no value at all: a sensor that does not
// answer fully is reported, not filled in).
type Sample struct {
	Sensor string
	Time   time.Time // when the poll started
	Values []Value   // in the order of the sensor's registers; nil with Err
	Err    error
}

// Status is what a sensor's polls came to so far.
type Status struct {
	Polls    int       // polls made
	Failed   int       // polls that failed
	Down     bool      // the last poll failed
	Since    time.Time // when it went down, or came up
	LastOK   time.Time
	LastErr  string
	Failures int // consecutive failed polls
}

// Poller polls the sensors of a Config.
type Poller struct {
	cfg  Config
	sink func(Sample)
	log  *slog.Logger
	now  func() time.Time

	mu     sync.Mutex
	status map[string]*Status
}

// NewPoller makes a poller of c's sensors (c must have passed Validate)
// that hands each sample to sink, one sensor at a time per sensor
// (sink may be called from several goroutines at once, one per sensor).
func NewPoller(c *Config, sink func(Sample), logger *slog.Logger) *Poller {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Poller{cfg: *c, sink: sink, log: logger, now: time.Now, status: map[string]*Status{}}
	for _, s := range c.Sensors {
		p.status[s.Name] = &Status{}
	}
	return p
}

// Run polls every sensor at its interval until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range p.cfg.Sensors {
		s := &p.cfg.Sensors[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx, s)
		}()
	}
	wg.Wait()
	return nil
}

// Status returns each sensor's status, by name.
func (p *Poller) Status() map[string]Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]Status, len(p.status))
	for k, v := range p.status {
		out[k] = *v
	}
	return out
}

func (p *Poller) run(ctx context.Context, s *Sensor) {
	c := &conn{s: s}
	defer c.close()
	t := time.NewTicker(s.Interval.Duration)
	defer t.Stop()
	for {
		smp := c.poll(p.now())
		p.record(s.Name, smp)
		if ctx.Err() != nil {
			return
		}
		p.sink(smp)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record keeps the sample's outcome and logs a sensor going down or up.
func (p *Poller) record(name string, smp Sample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.status[name]
	st.Polls++
	if smp.Err != nil {
		st.Failed++
		st.Failures++
		st.LastErr = smp.Err.Error()
		if !st.Down {
			st.Down, st.Since = true, smp.Time
			p.log.Warn("modbus: sensor not answering", "sensor", name, "err", smp.Err)
		}
		return
	}
	if st.Down {
		p.log.Info("modbus: sensor answering again", "sensor", name, "failed_polls", st.Failures)
		st.Down, st.Since = false, smp.Time
	}
	st.Failures, st.LastOK = 0, smp.Time
}

// conn is one sensor's Modbus TCP connection, opened when needed and
// dropped after any failure.
type conn struct {
	s  *Sensor
	mc *mb.ModbusClient
}

func (c *conn) close() {
	if c.mc != nil {
		c.mc.Close()
		c.mc = nil
	}
}

func (c *conn) poll(now time.Time) Sample {
	smp := Sample{Sensor: c.s.Name, Time: now}
	vals, err := c.read()
	if err != nil {
		c.close()
		smp.Err = fmt.Errorf("modbus: sensor %s at %s: %w", c.s.Name, c.s.Address, err)
		return smp
	}
	smp.Values = vals
	return smp
}

var quiet = log.New(io.Discard, "", 0)

func (c *conn) read() ([]Value, error) {
	if c.mc == nil {
		mc, err := mb.NewClient(&mb.ClientConfiguration{URL: "tcp://" + c.s.Address, Timeout: c.s.Timeout.Duration, Logger: quiet})
		if err != nil {
			return nil, err
		}
		if err := mc.Open(); err != nil {
			return nil, err
		}
		if err := mc.SetUnitId(c.s.UnitID); err != nil {
			mc.Close()
			return nil, err
		}
		c.mc = mc
	}
	vals := make([]Value, 0, len(c.s.Registers))
	for i := range c.s.Registers {
		r := &c.s.Registers[i]
		table := mb.HOLDING_REGISTER
		if r.Table == "input" {
			table = mb.INPUT_REGISTER
		}
		words, err := c.mc.ReadRegisters(r.Address, uint16(r.Words()), table)
		if err != nil {
			return nil, fmt.Errorf("reading %s (%s register %d): %w", r.Reading, r.Table, r.Address, err)
		}
		v, err := r.Decode(words)
		if err != nil {
			return nil, err
		}
		vals = append(vals, Value{Reading: r.Reading, Value: v})
	}
	return vals, nil
}

// IsException reports whether err is a Modbus exception the sensor
// answered (illegal address, device failure ...), as opposed to no
// answer at all.
func IsException(err error) bool {
	for _, e := range []error{mb.ErrIllegalFunction, mb.ErrIllegalDataAddress, mb.ErrIllegalDataValue, mb.ErrServerDeviceFailure,
		mb.ErrAcknowledge, mb.ErrServerDeviceBusy, mb.ErrMemoryParityError, mb.ErrGWPathUnavailable, mb.ErrGWTargetFailedToRespond} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
