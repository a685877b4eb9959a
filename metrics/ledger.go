package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/thingnet/thingnet/ledger"
)

// LedgerStats is what the ledger collector reads; *ledger.App has it.
type LedgerStats interface {
	Height() int64         // last committed block
	Verifications() uint64 // signatures verified since start
}

var _ LedgerStats = (*ledger.App)(nil)

// Ledger adds thingnet_ledger_height and
// thingnet_ledger_signatures_verified_total, read from app.
func (r *Registry) Ledger(app *ledger.App) { r.LedgerSource(app) }

// LedgerSource is Ledger over any LedgerStats.
func (r *Registry) LedgerSource(s LedgerStats) {
	height := newDesc("ledger", "height", "Height of the last block this node committed.")
	verified := newDesc("ledger", "signatures_verified_total",
		"Transaction signatures this node verified (individually or in batches), in CheckTx and FinalizeBlock.")
	r.reg.MustRegister(&snapshot{
		descs: []*prometheus.Desc{height, verified},
		collect: func(ch chan<- prometheus.Metric) {
			gauge(ch, height, float64(s.Height()))
			counter(ch, verified, s.Verifications())
		},
	})
}

// CheckTxRejections adds thingnet_ledger_checktx_rejected_total{reason}:
// transactions CheckTx refused, by reason. counts is called at every scrape
// and returns the counts since start by reason; it should return every
// reason it knows, zeros included, and must be safe to call concurrently
// with CheckTx (atomic counters, for instance).
func (r *Registry) CheckTxRejections(counts func() map[string]uint64) {
	rejected := newDesc("ledger", "checktx_rejected_total",
		"Transactions refused by CheckTx (kept out of the mempool), by reason.", "reason")
	r.reg.MustRegister(&snapshot{
		descs:   []*prometheus.Desc{rejected},
		collect: func(ch chan<- prometheus.Metric) { counters(ch, rejected, counts()) },
	})
}
