package events

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	"github.com/cometbft/cometbft/types"
	"github.com/thingnet/thingnet/record"
)

// ChainClient is what Watch needs of a CometBFT client: event
// subscriptions (rpc/client/local.Local has them).
type ChainClient interface {
	Subscribe(ctx context.Context, subscriber, query string, outCapacity ...int) (<-chan ctypes.ResultEvent, error)
	UnsubscribeAll(ctx context.Context, subscriber string) error
}

// BlockData is the data of a "block" event.
type BlockData struct {
	Height   int64          `json:"height"`
	Hash     string         `json:"hash"`
	Time     time.Time      `json:"time"`
	Proposer string         `json:"proposer"`
	Txs      int            `json:"txs"`
	Failed   int            `json:"failed"`           // txs whose execution was refused
	Kinds    map[string]int `json:"kinds"`            // txs by kind
	Interval float64        `json:"interval_seconds"` // since the previous block (0 for the first one seen)
}

// TxData is the data of a "tx" event (and of "org", "grant", "validator").
type TxData struct {
	Hash   string `json:"hash"`
	Height int64  `json:"height"`
	Index  int    `json:"index"`
	Kind   string `json:"kind"`
	Signer string `json:"signer"`
	Code   uint32 `json:"code"`
	Reason string `json:"reason"`
	Log    string `json:"log,omitempty"`
}

// DeviceData is the data of "device.status" and "device.update" events.
type DeviceData struct {
	Device string `json:"device"`
	Kind   string `json:"kind"`
	Status string `json:"status,omitempty"` // after the change (device.status)
	Reason string `json:"reason,omitempty"`
	Signer string `json:"signer"` // an org admin, or a gateway (a quarantine)
	Height int64  `json:"height"`
	Tx     string `json:"tx"`
}

// CommandData is the data of a "command" event.
type CommandData struct {
	ID        string `json:"id"`
	Device    string `json:"device"`
	Agreement string `json:"agreement"`
	Height    int64  `json:"height"`
	Tx        string `json:"tx,omitempty"` // empty for a command of a height trigger
}

// AnchorData is the data of an "anchor" event.
type AnchorData struct {
	Gateway string `json:"gateway"`
	Size    uint64 `json:"size"`
	Root    string `json:"root"` // hex
	Height  int64  `json:"height"`
	Tx      string `json:"tx"`
}

// EvidenceData is the data of a "validator.evidence" event: CometBFT
// committed evidence of a validator's misbehaviour and the ledger acted on
// it (removed the validator unless it was the last one).
type EvidenceData struct {
	Seq     uint64 `json:"seq"`     // the ledger's evidence record (GET /v1/evidence/{seq})
	Type    string `json:"type"`    // duplicate_vote or light_client_attack
	Address string `json:"address"` // the validator's address (hex)
	PubKey  string `json:"pub_key"` // its consensus key (hex)
	At      int64  `json:"at"`      // height of the misbehaviour
	Removed bool   `json:"removed"`
	Height  int64  `json:"height"` // the block that committed the evidence
}

// IntervalBuckets are the upper bounds, in seconds, of the block interval
// histogram.
var intervalBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30}

// ChainStats is what a Watcher counted since it started.
type ChainStats struct {
	Height    int64     // last block seen
	BlockTime time.Time // its header time
	Blocks    uint64
	// Committed counts committed txs by kind and result ("ok" or the
	// ledger's refusal code, e.g. "unauthorized").
	Committed map[string]map[string]uint64
	// Block intervals (header time to header time): cumulative counts per
	// upper bound of Buckets, their sum in seconds, and their number.
	Buckets        []float64
	IntervalCounts []uint64
	IntervalSum    float64
	Intervals      uint64
	// Transitions counts agreement transitions executed, by trigger (call,
	// reading, height, event), from the ledger's "agreement" events.
	Transitions map[string]uint64
}

// Watcher turns committed blocks into events and counts them.
type Watcher struct {
	bus *Bus
	log *slog.Logger

	mu        sync.Mutex
	height    int64
	last      time.Time
	blocks    uint64
	committed map[string]map[string]uint64
	trans     map[string]uint64 // agreement transitions by trigger
	counts    []uint64          // per bucket, not cumulative; last one is +Inf
	sum       float64
	intervals uint64
	done      chan struct{}
}

// Watch subscribes to c's new blocks and publishes, for each block, a
// "block" event, a "tx" event per transaction, and "device.status",
// "device.update", "anchor", "org", "grant" and "validator" events for the
// transactions that succeeded. It stops when ctx ends.
func Watch(ctx context.Context, c ChainClient, bus *Bus, logger *slog.Logger) (*Watcher, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	const subscriber = "thingnet-events"
	ch, err := c.Subscribe(ctx, subscriber, types.EventQueryNewBlock.String(), 256)
	if err != nil {
		return nil, fmt.Errorf("events: subscribing to new blocks: %w", err)
	}
	w := &Watcher{bus: bus, log: logger, committed: map[string]map[string]uint64{},
		counts: make([]uint64, len(intervalBuckets)+1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = c.UnsubscribeAll(ctx, subscriber)
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-ch:
				if !ok {
					return
				}
				if b, ok := ev.Data.(types.EventDataNewBlock); ok {
					w.block(b)
				}
			}
		}
	}()
	return w, nil
}

// Done is closed when the watcher has stopped.
func (w *Watcher) Done() <-chan struct{} { return w.done }

func (w *Watcher) block(b types.EventDataNewBlock) {
	if b.Block == nil {
		return
	}
	h := b.Block.Header
	bd := BlockData{Height: h.Height, Hash: b.BlockID.Hash.String(), Time: h.Time, Proposer: h.ProposerAddress.String(),
		Txs: len(b.Block.Txs), Kinds: map[string]int{}}
	var follow []func()
	type counted struct{ kind, result string }
	var results []counted
	for i, raw := range b.Block.Txs {
		td := TxData{Hash: fmt.Sprintf("%X", raw.Hash()), Height: h.Height, Index: i, Kind: "unknown"}
		if i < len(b.ResultFinalizeBlock.TxResults) {
			r := b.ResultFinalizeBlock.TxResults[i]
			td.Code, td.Log = r.Code, r.Log
		}
		td.Reason = record.Code(td.Code).String()
		tx, err := record.DecodeTx(raw)
		if err == nil {
			td.Kind, td.Signer = tx.Kind, tx.Signer
		}
		bd.Kinds[td.Kind]++
		result := "ok"
		if td.Code != 0 {
			bd.Failed++
			result = td.Reason
		}
		results = append(results, counted{td.Kind, result})
		follow = append(follow, func() { w.bus.Publish(TypeTx, td) })
		if err == nil && td.Code == 0 {
			if typ, data := txEvent(tx, td); typ != "" {
				follow = append(follow, func() { w.bus.Publish(typ, data) })
			}
			if strings.HasPrefix(tx.Kind, "agreement.") && i < len(b.ResultFinalizeBlock.TxResults) {
				follow = append(follow, effectEvents(w.bus, b.ResultFinalizeBlock.TxResults[i].Events, h.Height, td.Hash)...)
			}
		}
	}
	// Effects of agreements' height triggers, run at the end of the block.
	follow = append(follow, effectEvents(w.bus, b.ResultFinalizeBlock.Events, h.Height, "")...)
	w.mu.Lock()
	if !w.last.IsZero() && h.Height == w.height+1 {
		d := h.Time.Sub(w.last).Seconds()
		bd.Interval = d
		k := sort.SearchFloat64s(intervalBuckets, d)
		w.counts[k]++
		w.sum += d
		w.intervals++
	}
	w.height, w.last = h.Height, h.Time
	w.blocks++
	if w.trans == nil {
		w.trans = map[string]uint64{}
	}
	countTransitions(w.trans, b.ResultFinalizeBlock.Events)
	for _, r := range b.ResultFinalizeBlock.TxResults {
		if r.Code == 0 {
			countTransitions(w.trans, r.Events)
		}
	}
	for _, c := range results {
		m := w.committed[c.kind]
		if m == nil {
			m = map[string]uint64{}
			w.committed[c.kind] = m
		}
		m[c.result]++
	}
	w.mu.Unlock()
	w.bus.Publish(TypeBlock, bd)
	for _, f := range follow {
		f()
	}
}

// effectEvents turns the ABCI events of agreements' effects (device status
// changes, commands) into bus events: what agreements do to devices is seen
// live like what admins do.
func effectEvents(bus *Bus, evs []abci.Event, height int64, tx string) []func() {
	var out []func()
	for _, ev := range evs {
		attr := map[string]string{}
		for _, a := range ev.Attributes {
			attr[a.Key] = a.Value
		}
		switch ev.Type {
		case "device":
			d := DeviceData{Device: attr["id"], Kind: attr["action"], Status: attr["status"], Signer: "agreement", Height: height, Tx: tx}
			out = append(out, func() { bus.Publish(TypeDeviceStatus, d) })
		case "command":
			c := CommandData{ID: attr["id"], Device: attr["device"], Agreement: attr["agreement"], Height: height, Tx: tx}
			out = append(out, func() { bus.Publish(TypeCommand, c) })
		case "evidence": // the ledger's block events (ledger/evidence.go)
			seq, _ := strconv.ParseUint(attr["seq"], 10, 64)
			at, _ := strconv.ParseInt(attr["height"], 10, 64)
			e := EvidenceData{Seq: seq, Type: attr["type"], Address: attr["address"], PubKey: attr["pub_key"], At: at, Removed: attr["removed"] == "true", Height: height}
			out = append(out, func() { bus.Publish(TypeEvidence, e) })
		}
	}
	return out
}

// countTransitions counts the "agreement" events of executed transitions
// by their trigger.
func countTransitions(m map[string]uint64, evs []abci.Event) {
	for _, ev := range evs {
		if ev.Type != "agreement" {
			continue
		}
		trigger, transition := "", false
		for _, a := range ev.Attributes {
			switch a.Key {
			case "trigger":
				trigger = a.Value
			case "transition":
				transition = true
			}
		}
		if transition {
			m[trigger]++
		}
	}
}

// txEvent is the specific event of a successful tx, if it has one.
func txEvent(tx *record.Tx, td TxData) (string, any) {
	switch m := tx.Msg.(type) {
	case *record.DeviceRegister:
		return TypeDeviceStatus, DeviceData{Device: m.Device, Kind: tx.Kind, Status: string(record.StatusActive), Signer: tx.Signer, Height: td.Height, Tx: td.Hash}
	case *record.DeviceStatus:
		st := record.StatusActive
		switch tx.Kind {
		case record.KindDeviceSuspend:
			st = record.StatusSuspended
		case record.KindDeviceRevoke:
			st = record.StatusRevoked
		}
		return TypeDeviceStatus, DeviceData{Device: m.Device, Kind: tx.Kind, Status: string(st), Reason: m.Reason, Signer: tx.Signer, Height: td.Height, Tx: td.Hash}
	case *record.DeviceRotate:
		return TypeDeviceUpdate, DeviceData{Device: m.Device, Kind: tx.Kind, Signer: tx.Signer, Height: td.Height, Tx: td.Hash}
	case *record.DeviceUpdate:
		return TypeDeviceUpdate, DeviceData{Device: m.Device, Kind: tx.Kind, Signer: tx.Signer, Height: td.Height, Tx: td.Hash}
	case *record.DataAnchor:
		return TypeAnchor, AnchorData{Gateway: tx.Signer, Size: m.Size, Root: hex.EncodeToString(m.Root), Height: td.Height, Tx: td.Hash}
	}
	switch tx.Kind {
	case record.KindOrgCreate, record.KindOrgAdminAdd, record.KindOrgAdminRemove:
		return TypeOrg, td
	case record.KindGrantAdd, record.KindGrantRevoke:
		return TypeGrant, td
	case record.KindValidatorUpdate:
		return TypeValidator, td
	}
	return "", nil
}

// Stats is a snapshot of what the watcher counted.
func (w *Watcher) Stats() ChainStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := ChainStats{Height: w.height, BlockTime: w.last, Blocks: w.blocks, Committed: map[string]map[string]uint64{},
		Buckets: intervalBuckets, IntervalCounts: make([]uint64, len(intervalBuckets)), IntervalSum: w.sum, Intervals: w.intervals}
	for k, m := range w.committed {
		c := make(map[string]uint64, len(m))
		for r, n := range m {
			c[r] = n
		}
		s.Committed[k] = c
	}
	s.Transitions = make(map[string]uint64, len(w.trans))
	for k, n := range w.trans {
		s.Transitions[k] = n
	}
	var cum uint64
	for i := range intervalBuckets {
		cum += w.counts[i]
		s.IntervalCounts[i] = cum
	}
	return s
}
