package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// BenchmarkCatchUp measures what a new node's ledger spends to catch up
// with a chain of $THINGNET_CATCHUP_BLOCKS blocks of devnet-like load (4
// gateways anchoring their logs every block, 10 readings each, a device
// registered every 10 blocks): by replaying every block (FinalizeBlock and
// Commit, signatures verified, state on disk) and by state sync (the
// source's snapshot exported, then offered and applied chunk by chunk,
// hashes checked). Bytes are the blocks' txs for replay (headers and
// commits not counted) and the snapshot's chunks for state sync. Skipped
// unless the variable is set:
//
//	THINGNET_CATCHUP_BLOCKS=10000 go test -run XXX -bench BenchmarkCatchUp -benchtime 1x ./ledger
func BenchmarkCatchUp(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("THINGNET_CATCHUP_BLOCKS"))
	if n <= 0 {
		b.Skip("set THINGNET_CATCHUP_BLOCKS to the chain's length")
	}
	ctx := context.Background()
	admin := mustKey(b, identity.Ed25519)
	gws := make([]*identity.Key, 4)
	g := orgGenesis(admin, "acme")
	for i := range gws {
		gws[i] = mustKey(b, identity.Ed25519)
		g.Devices = append(g.Devices, GenesisDevice{ID: gws[i].ID(), Org: "acme", Class: record.ClassGateway})
	}
	genesis, _ := json.Marshal(g)
	val := mustKey(b, identity.Ed25519)
	initChain := &abci.RequestInitChain{ChainId: testChain, AppStateBytes: genesis, InitialHeight: 1,
		Validators: []abci.ValidatorUpdate{{PubKey: cmtcrypto.PublicKey{Sum: &cmtcrypto.PublicKey_Ed25519{Ed25519: val.Public().Bytes}}, Power: 10}}}
	open := func(dir string, interval int64) *App {
		a, err := NewApp(Config{Dir: dir, SnapshotInterval: interval})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { a.Close() })
		return a
	}
	run := func(a *App, h int64, txs [][]byte) {
		res, err := a.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: h, Txs: txs})
		if err != nil {
			b.Fatal(err)
		}
		for i, r := range res.TxResults {
			if r.Code != 0 {
				b.Fatalf("block %d tx %d: %s", h, i, r.Log)
			}
		}
		if _, err := a.Commit(ctx, &abci.RequestCommit{}); err != nil {
			b.Fatal(err)
		}
	}

	// The source chain, its blocks kept for the replay.
	src := open(filepath.Join(b.TempDir(), "src"), 1<<40)
	if _, err := src.InitChain(ctx, initChain); err != nil {
		b.Fatal(err)
	}
	logs := make([]*testonly.Tree, len(gws))
	for i := range logs {
		logs[i] = testonly.New(rfc6962.DefaultHasher)
	}
	nonces := map[string]uint64{}
	sign := func(k *identity.Key, h int64, m record.Msg) []byte {
		nonces[k.ID()]++
		raw, err := record.NewTx(k, k.ID(), testChain, nonces[k.ID()], h+100, m)
		if err != nil {
			b.Fatal(err)
		}
		return raw
	}
	blocks := make([][][]byte, n+1)
	var txBytes int64
	built := time.Now()
	for h := int64(1); h <= int64(n); h++ {
		var txs [][]byte
		for i, k := range gws {
			from := logs[i].Size()
			for r := range 10 {
				logs[i].AppendData(fmt.Appendf(nil, "gateway %d reading %d", i, int(from)+r))
			}
			a := &record.DataAnchor{Size: logs[i].Size(), Root: logs[i].Hash()}
			if from > 0 {
				p, err := logs[i].ConsistencyProof(from, logs[i].Size())
				if err != nil {
					b.Fatal(err)
				}
				a.Consistency = p
			}
			txs = append(txs, sign(k, h, a))
		}
		if h%10 == 0 {
			txs = append(txs, sign(admin, h, registerMsg(b, mustKey(b, identity.Ed25519), "acme")))
		}
		for _, tx := range txs {
			txBytes += int64(len(tx))
		}
		blocks[h] = txs
		run(src, h, txs)
	}
	b.Logf("source chain of %d blocks built in %v", n, time.Since(built))

	b.ResetTimer()
	for range b.N {
		// Replay.
		start := time.Now()
		rep := open(filepath.Join(b.TempDir(), "replay"), 0)
		if _, err := rep.InitChain(ctx, initChain); err != nil {
			b.Fatal(err)
		}
		for h := int64(1); h <= int64(n); h++ {
			run(rep, h, blocks[h])
		}
		replay := time.Since(start)
		if rep.Height() != src.Height() || string(rep.tree.Hash()) != string(src.tree.Hash()) {
			b.Fatal("the replayed ledger differs from the source")
		}

		// State sync: export, then restore.
		start = time.Now()
		sn, err := src.TakeSnapshot()
		if err != nil {
			b.Fatal(err)
		}
		exported := time.Since(start)
		dst := open(filepath.Join(b.TempDir(), "synced"), 0)
		off, err := dst.OfferSnapshot(ctx, &abci.RequestOfferSnapshot{Snapshot: sn, AppHash: src.tree.Hash()})
		if err != nil || off.Result != abci.ResponseOfferSnapshot_ACCEPT {
			b.Fatalf("offer: %v %v", off, err)
		}
		var snapBytes int64
		for i := range sn.Chunks {
			ch, _ := src.LoadSnapshotChunk(ctx, &abci.RequestLoadSnapshotChunk{Height: sn.Height, Format: sn.Format, Chunk: i})
			snapBytes += int64(len(ch.Chunk))
			res, err := dst.ApplySnapshotChunk(ctx, &abci.RequestApplySnapshotChunk{Index: i, Chunk: ch.Chunk})
			if err != nil || res.Result != abci.ResponseApplySnapshotChunk_ACCEPT {
				b.Fatalf("chunk %d: %v %v", i, res, err)
			}
		}
		synced := time.Since(start)
		b.ReportMetric(replay.Seconds(), "replay-s")
		b.ReportMetric(float64(txBytes), "replay-tx-bytes")
		b.ReportMetric(synced.Seconds(), "statesync-s")
		b.ReportMetric(exported.Seconds(), "export-s")
		b.ReportMetric(float64(snapBytes), "snapshot-bytes")
		b.ReportMetric(float64(sn.Chunks), "chunks")
	}
}
