package node

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// regs is a Modbus TCP server's input registers (the library's server).
type regs struct{ temp uint16 }

func (r *regs) HandleCoils(*mb.CoilsRequest) ([]bool, error) { return nil, mb.ErrIllegalFunction }
func (r *regs) HandleDiscreteInputs(*mb.DiscreteInputsRequest) ([]bool, error) {
	return nil, mb.ErrIllegalFunction
}
func (r *regs) HandleHoldingRegisters(*mb.HoldingRegistersRequest) ([]uint16, error) {
	return nil, mb.ErrIllegalFunction
}
func (r *regs) HandleInputRegisters(q *mb.InputRegistersRequest) ([]uint16, error) {
	if q.Addr != 30 || q.Quantity != 1 {
		return nil, mb.ErrIllegalDataAddress
	}
	return []uint16{r.temp}, nil
}

// TestNodeModbus: a node with [modbus] map polls the sensors of the map
// and its gateway records their values as attested readings once the
// sensor is registered with attested_by the gateway (before that, they
// are refused and nothing is stored); a map without a gateway is refused.
func TestNodeModbus(t *testing.T) {
	bad := DefaultConfig()
	bad.Gateway.Enabled = false
	bad.Modbus.Map = "modbus.toml"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "modbus.map needs gateway.enabled") {
		t.Fatalf("a map without a gateway: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv, err := mb.NewServer(&mb.ServerConfiguration{URL: "tcp://" + addr, Timeout: 10 * time.Second, MaxClients: 2, Logger: log.New(io.Discard, "", 0)}, &regs{temp: 215})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()

	home := t.TempDir()
	sensor, _ := identity.GenerateKey(identity.Ed25519)
	mapFile := fmt.Sprintf("[[sensor]]\nname = \"boiler\"\ndevice = %q\naddress = %q\ninterval = \"200ms\"\n"+
		"[[sensor.register]]\nreading = \"temperature/celsius\"\ntable = \"input\"\naddress = 30\ntype = \"int16\"\nscale = 0.1\n", sensor.ID(), addr)
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "modbus.toml"), []byte(mapFile), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t)
	c.Gateway.Enabled = true
	c.Modbus.Map = "modbus.toml"
	fixture := initSingleNode(t, home, "modbus", c)
	admin, gw := fixture.admin, fixture.gw
	n := startSingleNode(t, home, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("no %s", what)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	wait("block", func() bool { return n.App().Height() >= 1 })
	wait("polls", func() bool { return n.Modbus() != nil && n.Modbus().Status()["boiler"].Polls >= 3 })
	if size := n.Gateway().Log().Size(); size != 0 {
		t.Fatalf("%d readings stored of a sensor not registered", size)
	}

	pop, _ := sensor.Sign(record.PossessionMessage("modbus", "acme", sensor.ID()))
	cl := client.New("http://" + n.APIAddr())
	if _, err := device.RegisterAll(ctx, cl, admin, "modbus", []*record.DeviceRegister{{Org: "acme", Device: sensor.ID(), Class: "boiler",
		Proof: pop, AttestedBy: gw.ID()}}); err != nil {
		t.Fatal(err)
	}
	wait("attested reading stored", func() bool { return n.Gateway().Log().Size() > 0 })
	var page struct {
		Items []client.ReadingItem `json:"items"`
	}
	if err := cl.WithIdentity(&client.Identity{Key: admin}).Get(ctx, "/v1/readings?device="+sensor.ID(), &page); err != nil || len(page.Items) == 0 {
		t.Fatalf("the sensor's readings: %v", err)
	}
	if it := page.Items[0]; it.ContentType != "temperature/celsius" || it.Value == nil || *it.Value != 21.5 || it.AttestedBy != gw.ID() {
		t.Fatalf("%+v; want 21.5 °C attested by the gateway %s", it, gw.ID())
	}
}
