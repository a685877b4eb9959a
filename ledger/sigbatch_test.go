package ledger

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// TestSigBatcher: concurrent callers share one batch, and each gets its
// own signature's answer, bad signatures and keys of other algorithms
// among good ones included.
func TestSigBatcher(t *testing.T) {
	const n = 24
	// Filled only when all n callers joined, never by the timer.
	s := newSigBatcher(n, 1, time.Hour)
	type call struct {
		pub      identity.PublicKey
		msg, sig []byte
		want     bool
	}
	calls := make([]call, n)
	for i := range calls {
		alg := identity.Ed25519
		if i%7 == 3 {
			alg = identity.P256
		}
		k := mustKey(t, alg)
		msg := []byte(fmt.Sprintf("message %d", i))
		sig, err := k.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		c := call{pub: k.Public(), msg: msg, sig: sig, want: true}
		switch i % 5 {
		case 1: // another message's signature
			c.msg, c.want = []byte("something else"), false
		case 2: // a truncated signature
			c.sig, c.want = sig[:len(sig)-1], false
		}
		calls[i] = c
	}
	got := make([]bool, n)
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { got[i] = s.verify(c.pub, c.msg, c.sig) })
	}
	wg.Wait()
	for i, c := range calls {
		if got[i] != c.want {
			t.Errorf("signature %d: verified %v, want %v", i, got[i], c.want)
		}
	}
	if b, sigs := s.batches.Load(), s.sigs.Load(); b != 1 || sigs != n {
		t.Errorf("%d signatures in %d batches; want %d in 1", sigs, b, n)
	}
	// Alone, a caller with no wait verifies at once.
	s = newSigBatcher(n, 1, 0)
	if !s.verify(calls[0].pub, calls[0].msg, calls[0].sig) || s.verify(calls[1].pub, calls[1].msg, calls[1].sig) {
		t.Error("a batch of one gives the wrong answer")
	}
	if b := s.batches.Load(); b != 2 {
		t.Errorf("%d batches for two calls in turn; want 2", b)
	}
}

// TestPreCheckTxBatches: concurrent PreCheckTx calls verify in shared
// batches, and CheckTx then decides as without them: the good txs are
// found verified, the forged ones are refused.
func TestPreCheckTxBatches(t *testing.T) {
	const devices = 12
	admin := mustKey(t, identity.Ed25519)
	c := newChainConfig(t, orgGenesis(admin, "acme"), Config{PreCheckBatch: devices, PreCheckWait: time.Hour}, nil)
	txs := make([][]byte, devices)
	forged := map[int]bool{}
	for i := range txs {
		dev := c.register(admin, "acme", identity.Ed25519)
		grant := &record.GrantAdd{Grantor: "device:" + dev.ID(), Subject: "org:acme", Action: "read", Resource: "device:" + dev.ID() + "/readings"}
		signer := dev
		if i%4 == 1 {
			signer, forged[i] = mustKey(t, identity.Ed25519), true
		}
		raw, err := record.NewTx(signer, dev.ID(), testChain, 1, c.height+100, grant)
		if err != nil {
			t.Fatal(err)
		}
		txs[i] = raw
	}
	var wg sync.WaitGroup
	for _, raw := range txs {
		wg.Go(func() { c.app.PreCheckTx(raw) })
	}
	wg.Wait()
	if b, sigs := c.app.BatchStats(); b != 1 || sigs != devices {
		t.Errorf("PreCheckTx: %d signatures in %d batches; want %d in 1", sigs, b, devices)
	}
	before := c.app.Verifications()
	for i, raw := range txs {
		code, log := c.check(raw)
		switch {
		case forged[i] && code != record.CodeBadSignature:
			t.Errorf("CheckTx(forged tx %d) = %v (%s); want %v", i, code, log, record.CodeBadSignature)
		case !forged[i] && code != record.CodeOK:
			t.Errorf("CheckTx(tx %d) = %v (%s); want ok", i, code, log)
		}
	}
	if got, want := c.app.Verifications()-before, uint64(len(forged)); got != want {
		t.Errorf("CheckTx verified %d signatures after the batch; want %d (the forged ones, again)", got, want)
	}
}

// BenchmarkBatchSizes: the per-signature cost of identity.Batch at the
// sizes the mempool's batches reach (ns/sig; size 1 is a single check).
func BenchmarkBatchSizes(b *testing.B) {
	const most = 64
	pubs := make([]identity.PublicKey, most)
	msgs, sigs := make([][]byte, most), make([][]byte, most)
	for i := range most {
		k, err := identity.GenerateKey(identity.Ed25519)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = []byte(fmt.Sprintf("a tx's to-be-signed bytes, %d", i))
		if sigs[i], err = k.Sign(msgs[i]); err != nil {
			b.Fatal(err)
		}
		pubs[i] = k.Public()
	}
	b.Run("single", func(b *testing.B) {
		for b.Loop() {
			if err := pubs[0].Verify(msgs[0], sigs[0]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/sig")
	})
	for _, n := range []int{1, 2, 3, 4, 6, 8, 16, 32, 64} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			for b.Loop() {
				batch := identity.NewBatch(n)
				for i := range n {
					batch.Add(pubs[i], msgs[i], sigs[i])
				}
				if all, _ := batch.Verify(); !all {
					b.Fatal("invalid")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
		})
	}
}

// BenchmarkSigBatcherAlone: one caller at a time, as floods on a shared
// machine mostly are: the collector's cost over a single check.
func BenchmarkSigBatcherAlone(b *testing.B) {
	k, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		b.Fatal(err)
	}
	msg := []byte("a tx's to-be-signed bytes")
	sig, err := k.Sign(msg)
	if err != nil {
		b.Fatal(err)
	}
	pub := k.Public()
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if pub.Verify(msg, sig) != nil {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("batcher", func(b *testing.B) {
		s := newSigBatcher(64, 1, 0)
		for b.Loop() {
			if !s.verify(pub, msg, sig) {
				b.Fatal("invalid")
			}
		}
	})
}
