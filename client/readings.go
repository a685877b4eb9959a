package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// ReadingItem is one reading in a list (GET /v1/readings?device=): where
// it is in the gateway's log (to fetch its proof with Reading) and what it
// says.
type ReadingItem struct {
	Index       uint64    `json:"index"`
	Device      string    `json:"device"`
	Seq         uint64    `json:"seq"`
	Time        time.Time `json:"time"`
	ContentType string    `json:"content_type"`
	Value       *float64  `json:"value,omitempty"`
	Bytes       []byte    `json:"bytes,omitempty"`
	// Sealed is a value sealed to the organisation's data key
	// (reading.Sealed; Opener opens it), for a gateway that sends it.
	Sealed *reading.Sealed `json:"sealed,omitempty"`
	// AttestedBy is the gateway that signed the reading for a device that
	// cannot sign (a legacy sensor it polls): the reading is attested by
	// that gateway, not signed by the device. Empty for device-signed ones.
	AttestedBy string `json:"attested_by,omitempty"`
	// ReceivedAt is when the gateway received the reading, by its clock
	// (its log entry records it; absent for entries stored before
	// gateways recorded it).
	ReceivedAt *time.Time `json:"received_at,omitempty"`
	// Late says that the reading is dated more than the gateway's late
	// age before it was received (a device that buffered it offline;
	// docs/readings.md, "Time").
	Late bool `json:"late,omitempty"`
	// Gateway is the gateway whose log Index is of, in answers that may
	// merge several (GET /v1/readings/query, QueryNetwork).
	Gateway string `json:"gateway,omitempty"`
}

// NewReadingItem is the list item of reading r of log entry e at index i,
// late by the gateway's rule: the one way a gateway turns a stored reading
// into an item.
func NewReadingItem(i uint64, e *reading.Entry, r reading.Reading, late bool) ReadingItem {
	env := e.Envelope
	it := ReadingItem{Index: i, Device: env.Device, Seq: r.Seq, Time: r.Time, ContentType: r.ContentType,
		Value: r.Value, Bytes: r.Bytes, Sealed: r.Sealed, AttestedBy: env.Attester, Late: late}
	if e.ReceivedAt != 0 {
		t := time.UnixMilli(e.ReceivedAt).UTC()
		it.ReceivedAt = &t
	}
	return it
}

// Reading asks the node's gateway for the stored reading at index with its
// proof (GET /v1/readings/{index}); p.Err() says whether the proof could be
// made (proof.ErrNotAnchored: ask again in a block or two).
func (c *Client) Reading(ctx context.Context, index uint64) (*proof.Reading, error) {
	var p proof.Reading
	if err := c.Get(ctx, "/v1/readings/"+strconv.FormatUint(index, 10), &p); err != nil {
		return nil, fmt.Errorf("reading %d at %s: %w", index, c.BaseURL, err)
	}
	if p.Index != index {
		return nil, fmt.Errorf("reading %d at %s: the answer is of entry %d", index, c.BaseURL, p.Index)
	}
	return &p, nil
}

// WaitReadingProof fetches the reading at index until it has its proof:
// while it is not anchored yet it asks again every poll, until ctx ends.
func (c *Client) WaitReadingProof(ctx context.Context, index uint64, poll time.Duration) (*proof.Reading, error) {
	for {
		p, err := c.Reading(ctx, index)
		if err == nil {
			err = p.Err()
		}
		if !errors.Is(err, proof.ErrNotAnchored) {
			return p, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("reading %d: %w (%w)", index, err, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Checker checks state proofs against headers signed by more than 2/3 of
// the validator set the node reports (Client.VerifyProof): a proof.Checker.
// A device that must trust no node uses a light client instead
// (lightclient.Client).
type Checker struct {
	Client  *Client
	ChainID string
}

// CheckProof implements proof.Checker.
func (n Checker) CheckProof(ctx context.Context, p *record.Proof) (int64, error) {
	v, err := n.Client.VerifyProof(ctx, n.ChainID, p)
	if err != nil {
		return 0, err
	}
	return v.Header, nil
}

// VerifyReading checks a reading proof end to end (proof.VerifyReading)
// against the headers of the node behind c.
func (c *Client) VerifyReading(ctx context.Context, chainID string, p *proof.Reading) (*proof.Verified, error) {
	return proof.VerifyReading(ctx, Checker{Client: c, ChainID: chainID}, p)
}
