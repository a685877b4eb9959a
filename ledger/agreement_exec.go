// The agreement transactions: deploy, accept and call.

package ledger

import (
	"crypto/sha256"
	"strconv"
	"strings"

	"github.com/thingnet/thingnet/agreements"
	"github.com/thingnet/thingnet/agreements/lang"
	"github.com/thingnet/thingnet/record"
)

func (x *txExec) runner() *agRunner {
	return &agRunner{ops: x.ops(), progs: x.progs, signer: x.tx.Signer}
}

func (x *txExec) agreementDeploy(m *record.AgreementDeploy) error {
	d, err := lang.Parse(m.Source)
	if err != nil {
		return record.Errf(record.CodeInvalid, "agreement: %v", err)
	}
	ag := &record.Agreement{Name: d.Name, Source: m.Source, Deployer: x.tx.Signer, Deployed: x.height, Status: record.AgreementProposed, Updated: x.height}
	h := sha256.Sum256(m.Source)
	ag.Hash = h[:]
	prog, err := agreements.Compile(d, m.Parties, lang.DefaultLimits())
	if err != nil {
		return record.Errf(record.CodeInvalid, "agreement: %v", err)
	}
	for _, p := range prog.Parties {
		ag.Parties = append(ag.Parties, record.AgreementParty{Name: p.Name, Principal: p.Principal()})
		pr, _ := record.ParsePrincipal(p.Principal())
		if err := principalExists(x.st, pr); err != nil {
			return record.Errf(record.CodeNotFound, "party %s: %v", p.Name, logOf(err))
		}
	}
	for _, et := range prog.EventTriggers() {
		if et.Agreement != 0 {
			if _, err := x.st.Agreement(et.Agreement); err != nil {
				return record.Errf(record.CodeNotFound, "transition %s waits for an event of agreement %d, which does not exist", et.Transition, et.Agreement)
			}
		}
	}
	id, err := x.ops().nextSeq(record.KeyAgreementSeq)
	if err != nil {
		return err
	}
	ag.ID = id
	if ag.State, err = prog.Init(id, x.height); err != nil {
		return record.Errf(record.CodeInvalid, "agreement: initial state: %v", err)
	}
	accepted, err := x.accept(ag)
	if err != nil {
		return err
	}
	if !accepted {
		return record.Errf(record.CodeUnauthorized, "%s speaks for no party of the agreement (parties: %s); deploy with a party's key", x.tx.Signer, partyList(ag))
	}
	x.logAgreement(ag, "deploy")
	return x.activateIfReady(ag, prog)
}

func partyList(ag *record.Agreement) string {
	var s []string
	for _, p := range ag.Parties {
		s = append(s, p.Name+"="+p.Principal)
	}
	return strings.Join(s, ", ")
}

// accept marks the parties the signer speaks for as accepted.
func (x *txExec) accept(ag *record.Agreement) (bool, error) {
	accepted := false
	for i := range ag.Parties {
		ok, err := speaksForParty(x.st, x.tx.Signer, ag.Parties[i].Principal, true)
		if err != nil {
			return false, err
		}
		if ok && !ag.Parties[i].Accepted {
			ag.Parties[i].Accepted = true
			accepted = true
		}
	}
	return accepted, nil
}

func (x *txExec) logAgreement(ag *record.Agreement, trigger string) {
	ag.History++
	ag.Updated = x.height
	x.buf.set(record.AgreementEventKey(ag.ID, ag.History), &record.AgreementEvent{Seq: ag.History, Height: x.height, Tx: x.tx.Hash[:], Signer: x.tx.Signer, Trigger: trigger})
}

// activateIfReady starts an agreement every party accepted: its height
// triggers are scheduled and its event triggers subscribed.
func (x *txExec) activateIfReady(ag *record.Agreement, prog *agreements.Program) error {
	ready := true
	for _, p := range ag.Parties {
		ready = ready && p.Accepted
	}
	if ready {
		ag.Status = record.AgreementActive
		startTriggers(x.buf, prog, ag, x.height)
	}
	x.buf.set(record.AgreementKey(ag.ID), ag)
	x.emit("agreement", "id", strconv.FormatUint(ag.ID, 10), "name", ag.Name, "status", ag.Status)
	return nil
}

func (x *txExec) agreementAccept(m *record.AgreementAccept) error {
	ag, err := x.st.Agreement(m.ID)
	if err != nil {
		return notFound(err)
	}
	if ag.Status != record.AgreementProposed {
		return record.Errf(record.CodeConflict, "agreement %d is %s; only a proposed agreement is accepted", ag.ID, ag.Status)
	}
	accepted, err := x.accept(ag)
	if err != nil {
		return err
	}
	if !accepted {
		return record.Errf(record.CodeUnauthorized, "%s speaks for no party of agreement %d that has not accepted yet (parties: %s)", x.tx.Signer, ag.ID, partyList(ag))
	}
	prog, err := x.progs.get(ag)
	if err != nil {
		return record.Errf(record.CodeInvalid, "agreement %d does not compile: %v", ag.ID, err)
	}
	x.logAgreement(ag, "accept")
	return x.activateIfReady(ag, prog)
}

func (x *txExec) agreementCall(m *record.AgreementCall) error {
	_, err := x.agreementCallRun(m)
	return err
}

func (x *txExec) agreementCallRun(m *record.AgreementCall) (*agRunner, error) {
	ag, err := x.st.Agreement(m.ID)
	if err != nil {
		return nil, notFound(err)
	}
	in := &agreements.Input{Agreement: m.ID, Height: x.height, Signer: x.tx.Signer, Args: m.Args}
	kind := "call"
	if m.Reading != nil {
		kind = "reading"
		if in.Reading, err = verifyReading(x.st, x.chainID, x.tx.Signer, m.Reading); err != nil {
			return nil, err
		}
	} else {
		for _, p := range ag.Parties {
			ok, err := speaksForParty(x.st, x.tx.Signer, p.Principal, false)
			if err != nil {
				return nil, err
			}
			if ok {
				in.SignerParties = append(in.SignerParties, p.Name)
			}
		}
	}
	r := x.runner()
	defer x.flushEvents()
	return r, r.trigger(m.ID, m.Transition, kind, in)
}
