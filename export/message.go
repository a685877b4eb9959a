package export

import (
	"encoding/json"
	"time"
)

// Message is a reading as the NATS and webhook connectors send it (JSON):
// the row's columns (docs/export.md).
type Message struct {
	Gateway      string          `json:"gateway"`
	Index        uint64          `json:"index"`
	Org          string          `json:"org"`
	Device       string          `json:"device"`
	Seq          uint64          `json:"seq"`
	Time         time.Time       `json:"time"`
	Type         string          `json:"type"`
	Value        *float64        `json:"value,omitempty"`
	Bytes        []byte          `json:"bytes,omitempty"`
	Sealed       json.RawMessage `json:"sealed,omitempty"`
	AttestedBy   string          `json:"attested_by,omitempty"`
	ReceivedAt   *time.Time      `json:"received_at,omitempty"` // the gateway's receive time (docs/readings.md "Time")
	Late         bool            `json:"late,omitempty"`
	AnchorHeight int64           `json:"anchor_height,omitempty"`
	EntryHash    []byte          `json:"entry_hash"`
	Proof        string          `json:"proof"`
}

// Message is the row as a Message.
func (r *Row) Message() Message {
	m := Message{Gateway: r.Gateway, Index: r.Index, Org: r.Org, Device: r.Reading.Device, Seq: r.Reading.Seq, Time: r.Reading.Time,
		Type: r.Reading.ContentType, Value: r.Reading.Value, Bytes: r.Reading.Bytes, AttestedBy: r.Reading.AttestedBy,
		ReceivedAt: r.Reading.ReceivedAt, Late: r.Reading.Late, AnchorHeight: r.AnchorHeight, EntryHash: r.EntryHash, Proof: r.Proof}
	if r.Reading.Sealed != nil {
		m.Sealed, _ = json.Marshal(r.Reading.Sealed)
	}
	return m
}
