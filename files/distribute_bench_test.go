package files

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkDistribute: one seeder, N peers fetching the same 64 MiB file at
// once; thingnet (mesh hosts, bitswap via boxo) next to kubo daemons doing
// the same on the same machine in the same run. MB/s is the aggregate: N ×
// file size over the time until the last peer has it.
//
//	go test -run '^$' -bench Distribute -benchtime 1x -count 3 ./files/
func BenchmarkDistribute(b *testing.B) {
	const size = 64 << 20
	for _, peers := range []int{4, 8} {
		b.Run(fmt.Sprintf("thingnet/peers=%d", peers), func(b *testing.B) {
			n := newTestNet(b)
			seed := n.peer("acme", nil, nil)
			b.SetBytes(int64(size * peers))
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				a := add(b, seed, randomBytes(b, size))
				var ps []*testPeer
				for range peers {
					ps = append(ps, n.peer("beta", seed, nil))
				}
				b.StartTimer()
				var wg sync.WaitGroup
				errs := make(chan error, peers)
				for _, p := range ps {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, err := p.files.Get(context.Background(), a.CID, io.Discard, GetOptions{Peers: []peer.AddrInfo{seed.info()}})
						errs <- err
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("kubo/peers=%d", peers), func(b *testing.B) {
			seed := startKubo(b)
			var ks []*kubo
			for range peers {
				ks = append(ks, startKubo(b))
			}
			seedAddr := seed.addrInfo(b)
			b.SetBytes(int64(size * peers))
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				data := randomBytes(b, size)
				var added struct{ Hash string }
				if err := seed.call("add", url.Values{"cid-version": {"1"}, "raw-leaves": {"true"}, "pin": {"true"}}, data, &added); err != nil {
					b.Fatal(err)
				}
				for _, k := range ks {
					if err := k.call("swarm/connect", url.Values{"arg": {seedAddr.Addrs[0].String() + "/p2p/" + seedAddr.ID.String()}}, nil, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				var wg sync.WaitGroup
				errs := make(chan error, peers)
				for _, k := range ks {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var out []byte
						err := k.call("cat", url.Values{"arg": {added.Hash}, "timeout": {"300s"}}, nil, &out)
						if err == nil && !bytes.Equal(out, data) {
							err = fmt.Errorf("kubo got %d bytes", len(out))
						}
						errs <- err
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
