package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestPartition splits 4 validators 2/2 (neither side has more than 2/3
// of the power: no commits, no fork), heals (progress resumes), then 3/1
// (the 3 keep committing, the 1 catches up after the heal).
func TestPartition(t *testing.T) {
	long(t)
	start := time.Now()
	n := StartNet(t, Manifest{Name: "partition", Validators: 4})
	if !n.NetNS {
		t.Skip("partitions need network namespaces (run as root with the ip tool)")
	}
	r := result{Scenario: "partition", Invariant: "2/2: no commits, no fork; heal: progress; 3/1: 3 commit, 1 catches up"}
	defer func() { report(t, start, r) }()
	ctx, cancel := context.WithCancel(context.Background())
	load := n.StartTxLoad(ctx, 2, 200*time.Millisecond)
	time.Sleep(3 * time.Second)
	const hold = 20 * time.Second

	// 2/2: at most the block in flight at the split may still commit.
	n.Partition([]int{0, 1}, []int{2, 3})
	before := n.heights()
	time.Sleep(hold)
	during := n.heights()
	t.Logf("2/2 partition for %v: heights %v -> %v", hold, before, during)
	var commits2 int64
	for i := range before {
		if d := during[i] - before[i]; d > 1 {
			t.Errorf("2/2 partition: node %d committed %d blocks (%d -> %d) without a 2/3 majority", i, d, before[i], during[i])
		}
		commits2 = max(commits2, during[i]-before[i])
	}
	healed := time.Now()
	top := n.MaxHeight()
	n.Heal()
	wctx, wcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer wcancel()
	for i := range n.Nodes {
		n.WaitHeight(wctx, i, top+1)
	}
	resume := time.Since(healed)
	t.Logf("2/2 healed: every node committed a new block after %v", resume.Round(100*time.Millisecond))

	// 3/1: the 3 hold more than 2/3 and go on; node 3 stays behind.
	time.Sleep(2 * time.Second)
	n.Partition([]int{0, 1, 2}, []int{3})
	before = n.heights()
	time.Sleep(hold)
	during = n.heights()
	t.Logf("3/1 partition for %v: heights %v -> %v", hold, before, during)
	commits3 := during[0] - before[0]
	if commits3 < int64(hold/(3*time.Second)) {
		t.Errorf("3/1 partition: the majority committed only %d blocks in %v", commits3, hold)
	}
	if during[3]-before[3] > 1 {
		t.Errorf("3/1 partition: the isolated node committed %d blocks", during[3]-before[3])
	}
	healed = time.Now()
	top = n.MaxHeight()
	n.Heal()
	n.WaitHeight(wctx, 3, top)
	catchUp := time.Since(healed)
	t.Logf("3/1 healed: node 3 caught up %d blocks in %v", top-during[3], catchUp.Round(100*time.Millisecond))

	cancel()
	load.Stop()
	heights := n.CheckNoFork(wctx)
	lost := load.CheckAcked(wctx, t)
	tried, acked, failed := load.Counts()
	r.Load = fmt.Sprintf("2 workers, %d txs acked", acked)
	r.Faults = fmt.Sprintf("2/2 and 3/1 for %v each (%s)", hold, n.Firewall)
	r.Inputs = fmt.Sprintf("%d txs (%d unacked)", tried, failed)
	t.Logf("partition: 2/2 %d blocks in %v, resumed %v after heal; 3/1 majority %d blocks in %v, node 3 caught up in %v; %d txs tried, %d acked, %d lost; no fork over %d heights",
		commits2, hold, resume.Round(100*time.Millisecond), commits3, hold, catchUp.Round(100*time.Millisecond), tried, acked, lost, heights)
}

// TestLossyNetwork drops 20% of the packets between every two validators
// (each direction) for 30 s under tx load: blocks keep coming, no fork, no
// acknowledged tx lost. (No netem in this kernel: loss, but no delay.)
func TestLossyNetwork(t *testing.T) {
	long(t)
	start := time.Now()
	n := StartNet(t, Manifest{Name: "lossy", Validators: 4, Faults: []Fault{
		{At: 0, Kind: Loss, Percent: 20},
		{At: 30 * time.Second, Kind: Heal},
	}})
	if !n.NetNS || n.Firewall != "iptables" {
		t.Skip("packet loss needs network namespaces and iptables")
	}
	r := result{Scenario: "lossy-network", Invariant: "blocks keep coming; no fork; 0 acked txs lost"}
	defer func() { report(t, start, r) }()
	ctx, cancel := context.WithCancel(context.Background())
	load := n.StartTxLoad(ctx, 2, 200*time.Millisecond)
	time.Sleep(3 * time.Second)
	h0 := n.MaxHeight()
	t0 := time.Now()
	n.RunFaults(ctx, nil)
	lossy := time.Since(t0)
	h1 := n.MaxHeight()
	time.Sleep(2 * time.Second)
	cancel()
	load.Stop()
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer wcancel()
	top := n.MaxHeight()
	for i := range n.Nodes {
		n.WaitHeight(wctx, i, top)
	}
	heights := n.CheckNoFork(wctx)
	lost := load.CheckAcked(wctx, t)
	tried, acked, failed := load.Counts()
	if h1-h0 < int64(lossy/(3*time.Second)) {
		t.Errorf("only %d blocks in %v at 20%% loss", h1-h0, lossy.Round(time.Second))
	}
	r.Load = fmt.Sprintf("2 workers, %d txs acked", acked)
	r.Faults = fmt.Sprintf("20%% loss for %v", lossy.Round(time.Second))
	r.Inputs = fmt.Sprintf("%d txs (%d unacked)", tried, failed)
	t.Logf("lossy network: %d blocks in %v at 20%% loss between nodes; %d txs tried, %d acked, %d lost; no fork over %d heights",
		h1-h0, lossy.Round(time.Second), tried, acked, lost, heights)
}
