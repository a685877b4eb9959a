package modbus_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"
	"github.com/thingnet/thingnet/gateway/modbus"
)

// plc is the registers of a Modbus TCP server the test runs (the
// library's server: the real protocol over TCP), values the test changes.
type plc struct {
	mu      sync.Mutex
	holding map[uint16]uint16
	input   map[uint16]uint16
	fail    bool // answer with an exception (device failure)
}

func (p *plc) set(table map[uint16]uint16, addr uint16, words ...uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, w := range words {
		table[addr+uint16(i)] = w
	}
}

func (p *plc) HandleCoils(*mb.CoilsRequest) ([]bool, error) { return nil, mb.ErrIllegalFunction }
func (p *plc) HandleDiscreteInputs(*mb.DiscreteInputsRequest) ([]bool, error) {
	return nil, mb.ErrIllegalFunction
}

func (p *plc) read(table map[uint16]uint16, unit uint8, addr, n uint16) ([]uint16, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail {
		return nil, mb.ErrServerDeviceFailure
	}
	if unit != 3 {
		return nil, mb.ErrGWTargetFailedToRespond
	}
	out := make([]uint16, n)
	for i := range out {
		v, ok := table[addr+uint16(i)]
		if !ok {
			return nil, mb.ErrIllegalDataAddress
		}
		out[i] = v
	}
	return out, nil
}

func (p *plc) HandleHoldingRegisters(r *mb.HoldingRegistersRequest) ([]uint16, error) {
	if r.IsWrite {
		return nil, mb.ErrIllegalFunction
	}
	return p.read(p.holding, r.UnitId, r.Addr, r.Quantity)
}

func (p *plc) HandleInputRegisters(r *mb.InputRegistersRequest) ([]uint16, error) {
	return p.read(p.input, r.UnitId, r.Addr, r.Quantity)
}

// serve starts a Modbus TCP server for p on addr ("127.0.0.1:0": a free
// port) and returns it with its address.
func serve(t *testing.T, p *plc, addr string) (*mb.ModbusServer, string) {
	t.Helper()
	if strings.HasSuffix(addr, ":0") {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		addr = l.Addr().String()
		l.Close()
	}
	s, err := mb.NewServer(&mb.ServerConfiguration{URL: "tcp://" + addr, Timeout: 10 * time.Second, MaxClients: 4,
		Logger: log.New(io.Discard, "", 0)}, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s, addr
}

// The poller reads a real Modbus TCP server's registers, scaled and
// typed per the map, and follows the values the test sets; when the
// server answers with an exception, or stops answering, the sensor is
// reported down and no value is produced for those polls; when it is
// back, the polls go on.
func TestPoller(t *testing.T) {
	p := &plc{holding: map[uint16]uint16{}, input: map[uint16]uint16{}}
	p.set(p.input, 30, uint16(215))       // 21.5 °C
	p.set(p.holding, 100, 0x0002, 0x0001) // low word first: 65538 kWh
	f := math.Float32bits(1.25)
	p.set(p.holding, 200, uint16(f>>16), uint16(f)) // 1.25 bar
	srv, addr := serve(t, p, "127.0.0.1:0")
	defer func() { srv.Stop() }()

	cfg, err := modbus.ParseConfig([]byte(strings.Replace(example, "10.0.0.7:502", addr, 1)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sensors[0].Interval.Duration = 100 * time.Millisecond
	cfg.Sensors[0].Timeout.Duration = 100 * time.Millisecond
	samples := make(chan modbus.Sample, 1000)
	poller := modbus.NewPoller(cfg, func(s modbus.Sample) { samples <- s }, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- poller.Run(ctx) }()
	defer func() { cancel(); <-done }()

	next := func(what string, ok func(modbus.Sample) bool) modbus.Sample {
		t.Helper()
		for {
			select {
			case s := <-samples:
				if ok(s) {
					return s
				}
			case <-ctx.Done():
				t.Fatalf("no sample %s", what)
			}
		}
	}
	values := func(s modbus.Sample) string {
		var b strings.Builder
		for _, v := range s.Values {
			fmt.Fprintf(&b, "%s=%g ", v.Reading, v.Value)
		}
		return strings.TrimSpace(b.String())
	}
	want := "temperature/celsius=21.5 energy/kwh=65538 pressure/bar=1.25"
	if s := next("with values", func(s modbus.Sample) bool { return s.Err == nil }); values(s) != want || s.Sensor != "boiler-3" {
		t.Fatalf("%s: %s; want %s", s.Sensor, values(s), want)
	}

	// The values change on the sensor; the readings follow.
	p.set(p.input, 30, uint16(0xffff&-42)) // -4.2 °C
	next("with the new temperature", func(s modbus.Sample) bool {
		return s.Err == nil && strings.HasPrefix(values(s), "temperature/celsius=-4.2 ")
	})

	// An exception answer: reported, no values.
	p.mu.Lock()
	p.fail = true
	p.mu.Unlock()
	s := next("failed", func(s modbus.Sample) bool { return s.Err != nil })
	if s.Values != nil || !modbus.IsException(s.Err) || !strings.Contains(s.Err.Error(), "boiler-3") {
		t.Fatalf("an exception: %+v", s)
	}
	t.Logf("exception: %v", s.Err)
	p.mu.Lock()
	p.fail = false
	p.mu.Unlock()
	next("with values again", func(s modbus.Sample) bool { return s.Err == nil })

	// The server goes away: reported down, nothing invented meanwhile.
	srv.Stop()
	s = next("failed", func(s modbus.Sample) bool { return s.Err != nil })
	if s.Values != nil || modbus.IsException(s.Err) {
		t.Fatalf("no answer: %+v", s)
	}
	t.Logf("no answer: %v", s.Err)
	for range 3 {
		if s := next("any", func(modbus.Sample) bool { return true }); s.Err == nil {
			t.Fatalf("values from a sensor that is not there: %s", values(s))
		}
	}
	if st := poller.Status()["boiler-3"]; !st.Down || st.Failures < 4 || st.LastErr == "" {
		t.Fatalf("status while down: %+v", st)
	}

	// Back on the same address: polled again.
	srv, _ = serve(t, p, addr)
	next("with values after the restart", func(s modbus.Sample) bool { return s.Err == nil })
	if st := poller.Status()["boiler-3"]; st.Down || st.Failures != 0 || st.Failed < 5 {
		t.Fatalf("status after the restart: %+v", st)
	}
}
