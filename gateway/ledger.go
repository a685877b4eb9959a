package gateway

import (
	"context"

	rpcclient "github.com/cometbft/cometbft/rpc/client"

	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// Ledger is what a gateway needs of the ledger: the last committed state,
// to check devices and grants, and a way to submit its own transactions.
type Ledger interface {
	View() (*ledger.State, error)
	ChainID() string
	// Submit puts tx into the mempool (commit is observed through View); a
	// refusal is a *record.Error with its code.
	Submit(ctx context.Context, tx []byte) error
}

// NodeLedger is the Ledger of a gateway running inside a node.
type NodeLedger struct {
	App   *ledger.App
	Comet rpcclient.Client
}

func (l NodeLedger) View() (*ledger.State, error) { return l.App.View(0) }
func (l NodeLedger) ChainID() string              { return l.App.ChainID() }

func (l NodeLedger) Submit(ctx context.Context, tx []byte) error {
	res, err := l.Comet.BroadcastTxSync(ctx, tx)
	if err != nil {
		return err
	}
	if res.Code != 0 {
		return &record.Error{Code: record.Code(res.Code), Msg: res.Log}
	}
	return nil
}
