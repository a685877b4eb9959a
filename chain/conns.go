package chain

import (
	"context"

	abcicli "github.com/cometbft/cometbft/abci/client"
	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/proxy"
)

// ConcurrentApp is an application that is safe to call from CometBFT's
// four ABCI connections (consensus, mempool, query, snapshot) at the same
// time, each connection's own calls still one at a time. Start gives such
// an application one lock per connection (proxy.NewConnSyncLocalClientCreator)
// instead of one lock for all, so that the mempool's CheckTx runs beside
// FinalizeBlock and queries beside both.
//
// PreCheckTx is called for every new tx before the mempool connection's
// lock is taken, in the goroutine that submits the tx (an RPC handler, a
// peer's mempool reactor), concurrently with any other call: it does the
// costly part of CheckTx that needs no connection state (a signature
// check) so that the serialised CheckTx finds it done. It decides nothing:
// CheckTx still makes every check, and answers the same without it.
type ConcurrentApp interface {
	abci.Application
	PreCheckTx(tx []byte)
}

// clientCreator returns the ABCI client creator for app: one lock per
// connection and pre-checks for a ConcurrentApp, one lock for all
// connections otherwise (what CometBFT's examples, kvstore included, expect).
func clientCreator(app abci.Application) proxy.ClientCreator {
	if c, ok := app.(ConcurrentApp); ok {
		return connSyncCreator{app: c}
	}
	return proxy.NewLocalClientCreator(app)
}

type connSyncCreator struct{ app ConcurrentApp }

var _ proxy.ClientCreator = connSyncCreator{}

func (c connSyncCreator) NewABCIClient() (abcicli.Client, error) {
	cli, err := proxy.NewConnSyncLocalClientCreator(c.app).NewABCIClient()
	if err != nil {
		return nil, err
	}
	return &preCheckClient{Client: cli, app: c.app}, nil
}

// preCheckClient calls PreCheckTx before the connection's CheckTx, which
// takes the connection's lock. Only the mempool connection calls CheckTx.
type preCheckClient struct {
	abcicli.Client
	app ConcurrentApp
}

func (c *preCheckClient) CheckTxAsync(ctx context.Context, req *abci.RequestCheckTx) (*abcicli.ReqRes, error) {
	if req.Type == abci.CheckTxType_New {
		c.app.PreCheckTx(req.Tx)
	}
	return c.Client.CheckTxAsync(ctx, req)
}

func (c *preCheckClient) CheckTx(ctx context.Context, req *abci.RequestCheckTx) (*abci.ResponseCheckTx, error) {
	if req.Type == abci.CheckTxType_New {
		c.app.PreCheckTx(req.Tx)
	}
	return c.Client.CheckTx(ctx, req)
}
