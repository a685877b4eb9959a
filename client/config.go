package client

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/thingnet/thingnet/record"
)

// Desired is a device's effective desired configuration as the ledger
// holds it (GET /v1/devices/{id}/config): public, like all ledger data.
type Desired = record.DesiredConfig

// Desired returns device id's effective desired configuration.
func (c *Client) Desired(ctx context.Context, id string) (*Desired, error) {
	var d Desired
	if err := c.Get(ctx, "/v1/devices/"+url.PathEscape(id)+"/config", &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// ConfigTarget returns the current desired configuration of one target
// (GET /v1/config/{org}/{scope}/{name}).
func (c *Client) ConfigTarget(ctx context.Context, org, scope, name string) (*record.ConfigRecord, error) {
	var r struct {
		Record *record.ConfigRecord `json:"record"`
	}
	if err := c.Get(ctx, configPath(org, scope, name), &r); err != nil {
		return nil, err
	}
	if r.Record == nil {
		return nil, fmt.Errorf("client: no configuration record in the answer for %s/%s/%s", org, scope, name)
	}
	return r.Record, nil
}

// ConfigHistory returns every version of one target's desired
// configuration, oldest first.
func (c *Client) ConfigHistory(ctx context.Context, org, scope, name string) ([]record.ConfigRecord, error) {
	var out []record.ConfigRecord
	after := uint64(0)
	for {
		var p struct {
			Items []record.ConfigRecord `json:"items"`
			Next  string                `json:"next"`
		}
		if err := c.Get(ctx, configPath(org, scope, name)+"/history?after="+strconv.FormatUint(after, 10), &p); err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if p.Next == "" || len(p.Items) == 0 {
			return out, nil
		}
		after = p.Items[len(p.Items)-1].Version
	}
}

func configPath(org, scope, name string) string {
	return "/v1/config/" + url.PathEscape(org) + "/" + url.PathEscape(scope) + "/" + url.PathEscape(name)
}

// Reported is one configuration a device reported applying: a reading of
// content type record.ContentConfigReported, where it is in the gateway's
// log (its proof: Reading(Index)) and what it says.
type Reported struct {
	Index  uint64               `json:"index"`
	Seq    uint64               `json:"seq"`
	Time   time.Time            `json:"time"`
	Report *record.ConfigReport `json:"report"`
}

// ReportedConfigs lists what device id reported applying, oldest first,
// from this gateway's readings (GET /v1/readings?device=): private, so
// the client's identity must pass the read rule. At most maxPages pages
// of 1,000 readings are read.
func (c *Client) ReportedConfigs(ctx context.Context, id string, maxPages int) ([]Reported, error) {
	var out []Reported
	err := c.eachReading(ctx, id, time.UnixMilli(0), maxPages, func(it ReadingItem) {
		if it.ContentType != record.ContentConfigReported {
			return
		}
		rep, err := record.DecodeConfigReport(it.Bytes)
		if err != nil {
			return // a malformed report is the device's own: the raw readings show it
		}
		out = append(out, Reported{Index: it.Index, Seq: it.Seq, Time: it.Time, Report: rep})
	})
	return out, err
}
