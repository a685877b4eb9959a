package events

import (
	"fmt"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/types"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// BenchmarkPublish is the cost of one event for the publisher, with n
// subscribers that keep up.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{0, 10, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			bus := NewBus(0)
			done := make(chan struct{})
			defer close(done)
			for range n {
				s, _ := bus.Subscribe(0)
				go func() {
					for {
						select {
						case <-s.C:
						case <-done:
							return
						}
					}
				}()
			}
			data := TxData{Hash: "AB", Height: 1, Kind: "device.register", Reason: "ok"}
			b.ReportAllocs()
			for b.Loop() {
				bus.Publish(TypeTx, data)
			}
		})
	}
}

// BenchmarkWatcherBlock is the watcher's work for a committed block of
// 1,000 transactions: decoding each, its events, the counters.
func BenchmarkWatcherBlock(b *testing.B) {
	k, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	blk := types.EventDataNewBlock{Block: &types.Block{Header: types.Header{Height: 2}}}
	for i := range n {
		dev, _ := identity.GenerateKey(identity.Ed25519)
		raw, err := record.NewTx(k, "", "bench", uint64(i+1), 0, record.NewDeviceStatus(dev.ID(), record.StatusSuspended, "bench"))
		if err != nil {
			b.Fatal(err)
		}
		blk.Block.Txs = append(blk.Block.Txs, raw)
		blk.ResultFinalizeBlock.TxResults = append(blk.ResultFinalizeBlock.TxResults, &abci.ExecTxResult{})
	}
	w := &Watcher{bus: NewBus(0), committed: map[string]map[string]uint64{}, counts: make([]uint64, len(intervalBuckets)+1)}
	b.ReportAllocs()
	for b.Loop() {
		w.block(blk)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/tx")
}
