package files

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkAddGet: add a 16 MiB file on one node, get it on another over
// loopback (bitswap over the mesh host). MB/s is the file size over the time.
//
//	go test -run '^$' -bench 'AddGet|Providers' -benchtime 5x ./files/
func BenchmarkAddGet(b *testing.B) {
	const size = 16 << 20
	n := newTestNet(b)
	seed := n.peer("acme", nil, nil)
	data := randomBytes(b, size)
	b.Run("add", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			data[i%size] ^= 1 // a new file each time
			if _, err := seed.files.Add(context.Background(), bytes.NewReader(data), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			data[i%size] ^= 2
			a := add(b, seed, data)
			client := n.peer("beta", seed, nil)
			b.StartTimer()
			if _, err := client.files.Get(context.Background(), a.CID, io.Discard, GetOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProviders: time to fetch a 32 MiB file from 1 provider and
// from 3 (a bitswap session asks them all).
func BenchmarkProviders(b *testing.B) {
	const size = 32 << 20
	for _, np := range []int{1, 3} {
		b.Run(fmt.Sprintf("providers=%d", np), func(b *testing.B) {
			n := newTestNet(b)
			var ps []*testPeer
			for i := range np {
				var boot *testPeer
				if i > 0 {
					boot = ps[0]
				}
				ps = append(ps, n.peer("acme", boot, nil))
			}
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				data := randomBytes(b, size)
				var a Added
				var infos []peer.AddrInfo
				for _, p := range ps {
					a = add(b, p, data)
					infos = append(infos, p.info())
				}
				client := n.peer("beta", ps[0], nil)
				b.StartTimer()
				if _, err := client.files.Get(context.Background(), a.CID, io.Discard, GetOptions{Peers: infos}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
