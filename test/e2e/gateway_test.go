package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGatewayCrash publishes readings from 3 devices at QoS 1 to the MQTT
// broker of gateway node 0 of a 4-validator network, SIGKILLs the gateway
// twice mid-stream, and checks that every acknowledged reading is in the
// gateway's log, anchored, and proven through another node.
func TestGatewayCrash(t *testing.T) {
	long(t)
	start := time.Now()
	devices := []string{"sensor-1", "sensor-2", "sensor-3"}
	var devs []Device
	for _, d := range devices {
		devs = append(devs, Device{Name: d, Org: "acme", Class: "sensor"})
	}
	n := StartNet(t, Manifest{Name: "gateway-crash", Validators: 4, Gateways: []int{0}, Orgs: []string{"acme"}, Devices: devs,
		Faults: []Fault{
			{At: 5 * time.Second, Kind: Kill, Nodes: []int{0}},
			{At: 10 * time.Second, Kind: Restart, Nodes: []int{0}},
			{At: 20 * time.Second, Kind: Kill, Nodes: []int{0}},
			{At: 25 * time.Second, Kind: Restart, Nodes: []int{0}},
			{At: 35 * time.Second, Kind: End},
		}})
	r := result{Scenario: "gateway-crash", Invariant: "0 acknowledged readings lost"}
	defer func() { report(t, start, r) }()

	ctx, cancel := context.WithCancel(context.Background())
	load := n.StartReadingLoad(ctx, 0, devices, 50*time.Millisecond)
	kills := 0
	var backMu sync.Mutex
	var back []string // from a restart to the next acknowledged reading
	n.RunFaults(ctx, func(f Fault) {
		if f.Kind == Kill {
			kills++
		}
		if f.Kind == Restart {
			acked, since := load.Acked(), time.Now()
			go func() {
				for load.Acked() == acked && time.Since(since) < time.Minute {
					time.Sleep(20 * time.Millisecond)
				}
				backMu.Lock()
				back = append(back, time.Since(since).Round(100*time.Millisecond).String())
				backMu.Unlock()
			}()
		}
		t.Logf("fault: %v (%d readings acknowledged)", f, load.Acked())
	})
	cancel()
	load.Stop()
	backMu.Lock()
	t.Logf("acknowledging again after restart: %s", strings.Join(back, " "))
	backMu.Unlock()

	wctx, wcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer wcancel()
	stored, bad := n.storedReadings(wctx, 0, 1)
	for _, b := range bad {
		t.Errorf("log entry %d (%s) does not verify: %v", b.Index, b.Device, b.Err)
	}
	lost, total := 0, 0
	for dev, seqs := range load.acked {
		for seq := range seqs {
			total++
			if stored[dev][seq] == 0 {
				lost++
				t.Errorf("acknowledged reading %s seq %d is lost", dev, seq)
			}
		}
		for seq, times := range stored[dev] {
			if times > 1 {
				t.Errorf("reading %s seq %d stored %d times", dev, seq, times)
			}
		}
	}
	storedN := 0
	for _, s := range stored {
		storedN += len(s)
	}
	n.CheckNoFork(wctx)
	r.Load = fmt.Sprintf("3 devices, QoS 1, %d acked", total)
	r.Faults = fmt.Sprintf("%d gateway SIGKILLs", kills)
	r.Inputs = fmt.Sprintf("%d publishes, %d connects", load.published, load.reconnect)
	t.Logf("gateway crash: %d published, %d acknowledged, %d stored and proven through node 1, %d lost, %d (re)connects, %d kills",
		load.published, total, storedN, lost, load.reconnect, kills)
}
