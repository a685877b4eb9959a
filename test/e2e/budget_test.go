package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

// TestTenantFlood: one organisation floods the network with txs from its
// 16 devices, each pipelining as fast as the mempool takes them; another
// organisation's admin keeps committing one tx after another. With budgets
// of 40 txs per organisation per block and 150 in a mempool, the flood
// gets at most its share of every block, and the other's commit latency
// p99 stays within 2x of its baseline.
func TestTenantFlood(t *testing.T) {
	long(t)
	start := time.Now()
	const blockBudget, poolBudget, flooders = 40, 150, 16
	var devices []Device
	for i := range flooders {
		devices = append(devices, Device{Name: fmt.Sprintf("flood-%d", i), Org: "flood", Class: "sensor"})
	}
	n := StartNet(t, Manifest{Name: "tenant-flood", Validators: 4, Orgs: []string{"flood", "calm"}, Devices: devices,
		Genesis: []string{"--block-txs-per-org", fmt.Sprint(blockBudget), "--mempool-txs-per-org", fmt.Sprint(poolBudget)}})
	r := result{Scenario: "tenant-flood", Invariant: "flood within its block share; others' p99 within 2x"}
	defer func() { report(t, start, r) }()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	calm := n.Key("calm-admin")
	measure := func(phase string, count int) []time.Duration {
		var lat []time.Duration
		for i := range count {
			t0 := time.Now()
			res, err := n.Nodes[0].Client.Send(ctx, calm, "", // one node: another may be a block behind
				&record.OrgCreate{ID: fmt.Sprintf("calm-%s-%d", phase, i)}, true)
			if err != nil || res.Code != 0 {
				t.Fatalf("calm tx %d (%s): %v %+v", i, phase, err, res)
			}
			lat = append(lat, time.Since(t0))
		}
		return lat
	}
	base := measure("base", 40)

	// The flood: each device pipelines txs to its own node, a tx that
	// executes as a refusal (a device cannot create an organisation) but
	// takes block space like any other.
	fctx, fcancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var hashes []string
	refused := 0
	var wg sync.WaitGroup
	for d := range flooders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := n.Key(fmt.Sprintf("flood-%d", d))
			c := n.Nodes[d%len(n.Nodes)].Client
			st, err := c.Status(fctx)
			if err != nil {
				return
			}
			for nonce := uint64(1); fctx.Err() == nil; {
				raw, _ := record.NewTx(key, key.ID(), st.ChainID, nonce, st.Height+client.TxLifetime+1000, &record.OrgCreate{ID: fmt.Sprintf("f%d-%d", d, nonce)})
				res, err := c.Submit(fctx, raw, false)
				var ce *client.Error
				switch {
				case err == nil && res.Code == 0:
					mu.Lock()
					hashes = append(hashes, res.Hash)
					mu.Unlock()
					nonce++
				case errors.As(err, &ce) && ce.Code == "over_budget", err == nil && res.Reason == "over_budget":
					mu.Lock()
					refused++
					mu.Unlock()
					select { // the organisation's share is full: wait for a block
					case <-fctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				default:
					select {
					case <-fctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		}()
	}
	// Measure once the flood fills its share of the mempools.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		r := refused
		mu.Unlock()
		if r > 0 || time.Now().After(deadline) {
			break
		}
	}
	h0 := n.MaxHeight()
	flood := measure("flood", 40)
	h1 := n.MaxHeight()
	fcancel()
	wg.Wait()

	// Every block of the flood window carries at most the flood's share.
	perHeight := map[int64]int{}
	for _, h := range hashes {
		var info client.TxInfo
		if err := n.Nodes[0].Client.Get(ctx, "/v1/txs/"+h, &info); err != nil {
			continue // still in a mempool when the flood stopped, or expired
		}
		perHeight[info.Height]++
	}
	most, committed := 0, 0
	for _, c := range perHeight {
		most = max(most, c)
		committed += c
	}
	if most > blockBudget {
		t.Errorf("a block carried %d of the flood's txs; its share is %d", most, blockBudget)
	}
	pb, pf := percentile(base, 0.5), percentile(flood, 0.5)
	qb, qf := percentile(base, 0.99), percentile(flood, 0.99)
	if qf > 2*qb {
		t.Errorf("the other organisation's commit p99: %v under the flood vs %v before; want within 2x", qf, qb)
	}
	r.Load = fmt.Sprintf("calm: 80 txs; flood: %d devices", flooders)
	r.Faults = fmt.Sprintf("flood of %d accepted txs", len(hashes))
	r.Inputs = fmt.Sprintf("%d over_budget refusals", refused)
	t.Logf("flood: %d txs accepted into mempools, %d committed over heights %d-%d, at most %d in a block (share %d), %d refused over_budget; calm p50 %v -> %v, p99 %v -> %v (baseline -> flood)",
		len(hashes), committed, h0, h1, most, blockBudget, refused, pb.Round(time.Millisecond), pf.Round(time.Millisecond), qb.Round(time.Millisecond), qf.Round(time.Millisecond))
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
