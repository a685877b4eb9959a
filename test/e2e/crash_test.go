package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// catchUps measures how long restarted nodes take to reach the height the
// network had when they were restarted.
type catchUps struct {
	mu  sync.Mutex
	wg  sync.WaitGroup
	got []time.Duration
}

func (c *catchUps) watch(n *Net, i int) {
	target := n.MaxHeight()
	start := time.Now()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for time.Since(start) < 2*time.Minute {
			if n.Height(i) >= target {
				c.mu.Lock()
				c.got = append(c.got, time.Since(start))
				c.mu.Unlock()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

func (c *catchUps) String() string {
	c.wg.Wait()
	var s []string
	for _, d := range c.got {
		s = append(s, d.Round(100*time.Millisecond).String())
	}
	return strings.Join(s, " ")
}

// crashRun runs a 4-validator network under tx load while faults kill
// and restart validators, one at a time, and checks: blocks keep coming
// during the faults, no fork, no acknowledged tx lost, every killed node
// catches up.
func crashRun(t *testing.T, name string, faults []Fault, workers int) {
	start := time.Now()
	n := StartNet(t, Manifest{Name: name, Validators: 4, Faults: faults})
	r := result{Scenario: name, Invariant: "blocks during faults; no fork; 0 acked txs lost; killed catch up"}
	defer func() { report(t, start, r) }()

	ctx, cancel := context.WithCancel(context.Background())
	load := n.StartTxLoad(ctx, workers, 100*time.Millisecond)
	time.Sleep(2 * time.Second)
	h0, t0 := n.MaxHeight(), time.Now()
	var cu catchUps
	kills := 0
	n.RunFaults(ctx, func(f Fault) {
		t.Logf("fault: %v (heights %v)", f, n.heights())
		if f.Kind == Kill {
			kills++
		}
		if f.Kind == Restart {
			for _, i := range f.Nodes {
				cu.watch(n, i)
			}
		}
	})
	h1, faultTime := n.MaxHeight(), time.Since(t0)
	time.Sleep(2 * time.Second)
	cancel()
	load.Stop()
	t.Logf("catch-up after restart: %s", cu.String())

	// Every node, the killed ones too, reaches the network's height.
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer wcancel()
	top := n.MaxHeight()
	for i := range n.Nodes {
		n.WaitHeight(wctx, i, top)
	}
	heights := n.CheckNoFork(wctx)
	lost := load.CheckAcked(wctx, t)
	tried, acked, failed := load.Counts()
	if h1-h0 < int64(faultTime/(3*time.Second)) {
		t.Errorf("only %d blocks in %v of faults", h1-h0, faultTime.Round(time.Second))
	}
	r.Load = fmt.Sprintf("%d workers, %d txs acked", workers, acked)
	r.Faults = fmt.Sprintf("%d SIGKILLs in %v", kills, faultTime.Round(time.Second))
	r.Inputs = fmt.Sprintf("%d txs (%d unacked)", tried, failed)
	t.Logf("%s: %d blocks committed during %v of faults (%d kills); %d txs tried, %d acknowledged, %d lost; no fork over %d heights; catch-up %s",
		name, h1-h0, faultTime.Round(time.Second), kills, tried, acked, lost, heights, cu.String())
}

func (n *Net) heights() []int64 {
	var hs []int64
	for i := range n.Nodes {
		hs = append(hs, n.Height(i))
	}
	return hs
}

// TestSmoke is the short scenario the normal test run includes: a
// 4-validator network of real processes under light tx load, one
// validator SIGKILLed and restarted.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node processes")
	}
	crashRun(t, "smoke", []Fault{
		{At: 2 * time.Second, Kind: Kill, Nodes: []int{3}},
		{At: 7 * time.Second, Kind: Restart, Nodes: []int{3}},
	}, 2)
}

// TestValidatorCrash SIGKILLs one of 4 validators every 10 s for a minute
// (each down 5 s, a different one each time) under tx load.
func TestValidatorCrash(t *testing.T) {
	long(t)
	var faults []Fault
	for k := 0; k < 6; k++ {
		i := k % 4
		at := time.Duration(k) * 10 * time.Second
		faults = append(faults, Fault{At: at, Kind: Kill, Nodes: []int{i}}, Fault{At: at + 5*time.Second, Kind: Restart, Nodes: []int{i}})
	}
	crashRun(t, "validator-crash", faults, 3)
}
