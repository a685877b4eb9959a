package files

import (
	"context"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/exchange"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// received is a block that bitswap delivered: its CID was derived from its
// bytes where they entered from the network (boxo's message decoder,
// bitswap/message: cid.Prefix.Sum for every payload block, blocks.NewBlock
// for the old format), and a session hands out only blocks whose derived
// CID it wanted. A block that bitswap publishes from this node itself was
// accepted by the Store before (checked there). So the Store does not hash
// a received block a second time: one SHA-256 per block, at the edge.
//
// Only this package can make one, and only receivedExchange does.
type received struct{ blocks.Block }

// receivedExchange is bitswap as the block service's exchange, marking
// every block it delivers as received.
type receivedExchange struct{ *bitswap.Bitswap }

var _ exchange.SessionExchange = receivedExchange{}

func (e receivedExchange) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	return receivedFetcher{e.Bitswap}.GetBlock(ctx, c)
}

func (e receivedExchange) GetBlocks(ctx context.Context, ks []cid.Cid) (<-chan blocks.Block, error) {
	return receivedFetcher{e.Bitswap}.GetBlocks(ctx, ks)
}

func (e receivedExchange) NewSession(ctx context.Context) exchange.Fetcher {
	return receivedFetcher{e.Bitswap.NewSession(ctx)}
}

type receivedFetcher struct{ f exchange.Fetcher }

func (f receivedFetcher) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := f.f.GetBlock(ctx, c)
	if err != nil {
		return nil, err
	}
	return received{b}, nil
}

func (f receivedFetcher) GetBlocks(ctx context.Context, ks []cid.Cid) (<-chan blocks.Block, error) {
	in, err := f.f.GetBlocks(ctx, ks)
	if err != nil {
		return nil, err
	}
	out := make(chan blocks.Block)
	go func() {
		defer close(out)
		for b := range in { // bitswap closes in when ctx ends
			select {
			case out <- received{b}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
