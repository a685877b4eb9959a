// The scheduler: agreements' height triggers and event subscriptions.

package ledger

import (
	"encoding/binary"
	"errors"
	"slices"

	"github.com/thingnet/thingnet/agreements"
	"github.com/thingnet/thingnet/agreements/lang"
	"github.com/thingnet/thingnet/record"
)

// MaxScheduledPerBlock bounds height-triggered transitions per block; the
// rest run in the next blocks, in the same order.
const MaxScheduledPerBlock = 256

// scheduleScan bounds the due triggers a block looks at: enough to find
// MaxScheduledPerBlock of organisations within their budget behind one
// that spent its own (governance.go). An organisation holding more than
// this many due triggers at once still delays the others' (docs/operations.md).
const scheduleScan = 4 * MaxScheduledPerBlock

func scheduleKey(height int64, id uint64, trigger int) []byte {
	k := binary.BigEndian.AppendUint64([]byte(record.PrefixSchedule), uint64(height))
	k = binary.BigEndian.AppendUint64(k, id)
	return binary.BigEndian.AppendUint16(k, uint16(trigger))
}

func subscriptionPrefix(source uint64, event string) []byte {
	return append(binary.BigEndian.AppendUint64([]byte(record.PrefixSubscription), source), event+"\x00"...)
}

// startTriggers schedules the height triggers of agreement ag, activated
// at height, and subscribes its event triggers.
func startTriggers(buf *buffer, prog *agreements.Program, ag *record.Agreement, height int64) {
	for i, ht := range prog.HeightTriggers() {
		switch {
		case ht.Every > 0:
			buf.set(scheduleKey(height+ht.Every, ag.ID, i), marker)
		default:
			if v, _ := prog.Var(ag.State, ht.At); v.Int > height {
				buf.set(scheduleKey(v.Int, ag.ID, i), marker)
			}
		}
	}
	for i, et := range prog.EventTriggers() {
		src := et.Agreement
		if src == 0 {
			src = ag.ID
		}
		k := binary.BigEndian.AppendUint64(subscriptionPrefix(src, et.Event), ag.ID)
		buf.set(binary.BigEndian.AppendUint16(k, uint16(i)), marker)
	}
}

// reschedule moves the "at" height triggers whose variable changed.
func reschedule(ops *ledgerOps, prog *agreements.Program, id uint64, old, cur *lang.Instance) error {
	for i, ht := range prog.HeightTriggers() {
		if ht.At == "" {
			continue
		}
		ov, _ := prog.Var(old, ht.At)
		nv, _ := prog.Var(cur, ht.At)
		if ov.Int == nv.Int {
			continue
		}
		if ov.Int > ops.height {
			ops.buf.del(scheduleKey(ov.Int, id, i))
		}
		if nv.Int > ops.height {
			ops.buf.set(scheduleKey(nv.Int, id, i), marker)
		}
	}
	return nil
}

// runScheduled runs the height-triggered transitions due at height, at
// most MaxScheduledPerBlock of them, in key order (height, agreement,
// trigger), and at most the governance's block_triggers_per_org of those
// charged to one organisation (the agreement's deployer's, governance.go);
// the rest stay due for the next blocks.
func (a *App) runScheduled(height int64) ([]eventSink, error) {
	buf := newBuffer(a.tree)
	st := &State{r: buf, Height: height}
	type due struct {
		key    []byte
		height int64
		id     uint64
		idx    int
	}
	var dues []due
	start := []byte(record.PrefixSchedule)
	err := st.scan(start, scheduleKey(height+1, 0, 0), func(k, _ []byte) (bool, error) {
		rest := k[len(record.PrefixSchedule):]
		dues = append(dues, due{slices.Clone(k), int64(binary.BigEndian.Uint64(rest)), binary.BigEndian.Uint64(rest[8:]), int(binary.BigEndian.Uint16(rest[16:]))})
		return len(dues) < scheduleScan, nil
	})
	if err != nil || len(dues) == 0 {
		return nil, err
	}
	g, err := st.Governance()
	if err != nil {
		return nil, err
	}
	budget := newBudgetCounter(g.BlockTriggers)
	var events []eventSink
	ran := 0
	for _, d := range dues {
		if ran == MaxScheduledPerBlock {
			break
		}
		ag, err := st.Agreement(d.id)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				buf.del(d.key)
				continue
			}
			return nil, err
		}
		if ag.Status != record.AgreementActive {
			buf.del(d.key)
			continue
		}
		if g.BlockTriggers > 0 {
			c, err := chargeOfSigner(st, ag.Deployer)
			if err != nil {
				return nil, err
			}
			if !budget.take(c) {
				continue // stays due: its organisation spent this block's share
			}
		}
		buf.del(d.key)
		ran++
		prog, err := a.progs.get(ag)
		if err != nil {
			continue
		}
		hts := prog.HeightTriggers()
		if d.idx >= len(hts) {
			continue
		}
		ht := hts[d.idx]
		r := &agRunner{ops: &ledgerOps{st: st, buf: buf, height: height, events: &events}, progs: a.progs}
		if err := r.trigger(d.id, ht.Transition, "height", &agreements.Input{Agreement: d.id, Height: height}); err != nil {
			if err := r.recordFailure(d.id, ht.Transition, "height", err); err != nil {
				return nil, err
			}
		}
		if ht.Every > 0 {
			if ag, err := st.Agreement(d.id); err == nil && ag.Status == record.AgreementActive {
				buf.set(scheduleKey(height+ht.Every, d.id, d.idx), marker)
			}
		}
	}
	return events, buf.flush()
}
