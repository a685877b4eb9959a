package bench

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/thingnet/thingnet/chain"
)

func TestKVStoreTxs(t *testing.T) {
	txs := KVStoreTxs(1000, KVStoreTxSize)
	seen := map[string]bool{}
	app := kvstore.NewInMemoryApplication()
	for i, tx := range txs {
		if len(tx) != KVStoreTxSize || seen[string(tx)] {
			t.Fatalf("tx %d: %d bytes, repeated %v", i, len(tx), seen[string(tx)])
		}
		seen[string(tx)] = true
		res, err := app.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: tx})
		if err != nil || res.Code != kvstore.CodeTypeOK {
			t.Fatalf("tx %d %q: kvstore CheckTx %v, %v", i, tx, res, err)
		}
	}
	if other := KVStoreTxs(1, KVStoreTxSize); bytes.Equal(other[0], txs[0]) {
		t.Fatal("two calls made the same tx")
	}
	if short := KVStoreTxs(1, 3); bytes.Count(short[0], []byte("=")) != 1 {
		t.Fatalf("short tx %q", short[0])
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if p := percentile(d, 50); p != 50 {
		t.Errorf("p50 of 1..100 = %d", p)
	}
	if p := percentile(d, 99); p != 99 {
		t.Errorf("p99 of 1..100 = %d", p)
	}
	if p := percentile(d[:1], 99); p != 1 {
		t.Errorf("p99 of one = %d", p)
	}
}

func TestFloodKVStore(t *testing.T) {
	net, err := chain.StartLocalNet(chain.LocalNetConfig{
		Dir:        t.TempDir(),
		Validators: 4,
		ChainID:    "bench-test",
		FastBlocks: true,
		NewApp: func(int, string) (abci.Application, error) {
			return kvstore.NewInMemoryApplication(), nil
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := net.Stop(); err != nil {
			t.Error(err)
		}
	}()
	ctx := context.Background()

	const n = 2000
	res, err := floodLocalNet(ctx, net, FloodConfig{Txs: KVStoreTxs(n, KVStoreTxSize), Timeout: 90 * time.Second})
	t.Logf("flood: %+v", res)
	if err != nil {
		t.Fatal(err)
	}
	if res.Submitted != n || res.Committed != n || res.Rejected != 0 || res.Failed != 0 {
		t.Fatalf("submitted %d, committed %d, rejected %d (%s), failed %d; want all %d committed",
			res.Submitted, res.Committed, res.Rejected, res.RejectReason, res.Failed, n)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.TxPerSec <= 0 {
		t.Fatalf("measurements %+v", res)
	}

	// Paced: 300 txs at 1,000 tx/s take at least 0.3 s to submit.
	res, err = Flood(ctx, net.Nodes(), FloodConfig{Txs: KVStoreTxs(300, KVStoreTxSize), Rate: 1000, Timeout: time.Minute})
	t.Logf("paced flood: %+v", res)
	if err != nil {
		t.Fatal(err)
	}
	if res.Committed != 300 || res.Duration < 299*time.Millisecond {
		t.Fatalf("paced flood: committed %d in %v", res.Committed, res.Duration)
	}

	// The same txs again: the mempool cache refuses them, and Flood reports it.
	txs := KVStoreTxs(4, KVStoreTxSize)
	if _, err := Flood(ctx, net.Nodes(), FloodConfig{Txs: txs}); err != nil {
		t.Fatal(err)
	}
	res, err = Flood(ctx, net.Nodes(), FloodConfig{Txs: txs, Timeout: 10 * time.Second})
	if err != nil || res.Rejected != 4 || res.RejectReason == "" {
		t.Fatalf("repeated txs: %+v, %v", res, err)
	}
}

// BenchmarkKVStoreBaseline runs RunKVStoreBaseline with THINGNET_BENCH_TXS txs
// (default 20,000); run it with -benchtime=1x.
func BenchmarkKVStoreBaseline(b *testing.B) {
	txs := 20000
	if s := os.Getenv("THINGNET_BENCH_TXS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("THINGNET_BENCH_TXS=%q: %v", s, err)
		}
		txs = n
	}
	var res FloodResult
	for b.Loop() {
		var err error
		res, err = RunKVStoreBaseline(context.Background(), b.TempDir(), txs, 0)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%+v", res)
	b.ReportMetric(res.TxPerSec, "tx/s")
	b.ReportMetric(float64(res.P50)/float64(time.Millisecond), "p50-ms")
	b.ReportMetric(float64(res.P99)/float64(time.Millisecond), "p99-ms")
	b.ReportMetric(float64(res.Committed), "committed")
}
