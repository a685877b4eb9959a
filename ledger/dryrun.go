// Dry runs: what an agreement tx would do on the committed state.

package ledger

import (
	"errors"
	"fmt"

	"github.com/thingnet/thingnet/record"
)

// readOnly lets a buffer stage writes over a committed version that it
// never flushes (dry runs).
type readOnly struct{ reader }

func (readOnly) Set([]byte, []byte) (bool, error) {
	return false, errors.New("ledger: a dry run cannot write")
}

func (readOnly) Remove([]byte) ([]byte, bool, error) {
	return nil, false, errors.New("ledger: a dry run cannot write")
}

// DryRun is what an agreement tx would do on the latest committed state.
type DryRun struct {
	Height int64   `json:"height"` // the committed state it ran on (as block Height+1)
	OK     bool    `json:"ok"`
	Code   string  `json:"code,omitempty"`
	Error  string  `json:"error,omitempty"`
	Trace  []Trace `json:"trace"` // every transition run, events included
	Cost   uint64  `json:"cel_cost"`
}

// DryRun executes an agreement.call or agreement.deploy by signer as if
// it were in the next block, against the latest committed state, and
// throws the result away. Nonce and signature are not checked.
func (a *App) DryRun(signer string, m record.Msg) (*DryRun, error) {
	base, err := a.View(0)
	if err != nil {
		return nil, err
	}
	buf := newBuffer(readOnly{base.r})
	st := &State{r: buf, Height: base.Height}
	out := &DryRun{Height: base.Height, Trace: []Trace{}}
	fail := func(err error) (*DryRun, error) {
		if storageError(err) {
			return nil, err
		}
		out.Code, out.Error = record.CodeOf(err).String(), logOf(err)
		return out, nil
	}
	if err := m.ValidateBasic(); err != nil {
		return fail(record.Errf(record.CodeInvalid, "%v", err))
	}
	x := &txExec{st: st, buf: buf, tx: &record.Tx{Body: record.Body{Signer: signer, Kind: m.Kind()}, Msg: m}, chainID: a.ChainID(), height: base.Height + 1, progs: a.progs}
	if d, err := st.Device(signer); err == nil {
		x.device = d
	}
	switch m := m.(type) {
	case *record.AgreementCall:
		r, err := x.agreementCallRun(m)
		if r != nil {
			out.Trace = append(out.Trace, r.trace...)
		}
		if err != nil {
			return fail(err)
		}
	case *record.AgreementDeploy:
		if err := x.agreementDeploy(m); err != nil {
			return fail(err)
		}
		id, _ := st.u64([]byte(record.KeyAgreementSeq))
		ag, err := st.Agreement(id)
		if err != nil {
			return nil, err
		}
		prog, err := a.progs.get(ag)
		if err != nil {
			return fail(record.Errf(record.CodeInvalid, "%v", err))
		}
		out.Trace = append(out.Trace, Trace{Agreement: id, Trigger: "deploy", State: prog.StateMap(ag.State)})
	default:
		return nil, fmt.Errorf("a dry run takes %s or %s, not %s", record.KindAgreementCall, record.KindAgreementDeploy, m.Kind())
	}
	out.OK = true
	for _, t := range out.Trace {
		out.Cost += t.Cost
	}
	return out, nil
}
