package client

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/thingnet/thingnet/record"
)

// Job returns a job's progress (GET /v1/jobs/{org}/{id}): public, like
// all ledger data.
func (c *Client) Job(ctx context.Context, org string, id uint64) (*record.JobProgress, error) {
	var r struct {
		Record *record.JobProgress `json:"record"`
	}
	if err := c.Get(ctx, "/v1/jobs/"+url.PathEscape(org)+"/"+strconv.FormatUint(id, 10), &r); err != nil {
		return nil, err
	}
	if r.Record == nil {
		return nil, fmt.Errorf("client: no job in the answer for %s/%d", org, id)
	}
	return r.Record, nil
}

// Jobs returns an organisation's jobs, oldest first (GET /v1/jobs?org=).
func (c *Client) Jobs(ctx context.Context, org string) ([]record.JobRecord, error) {
	var out []record.JobRecord
	after := uint64(0)
	for {
		var p struct {
			Items []record.JobRecord `json:"items"`
			Next  string             `json:"next"`
		}
		q := url.Values{"org": {org}, "after": {strconv.FormatUint(after, 10)}}
		if err := c.Get(ctx, "/v1/jobs?"+q.Encode(), &p); err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if p.Next == "" || len(p.Items) == 0 {
			return out, nil
		}
		after = p.Items[len(p.Items)-1].ID
	}
}

// JobTargeted counts the devices of org a job target covers now, listing
// at most limit of the organisation's devices (for a failure threshold
// given in percent).
func (c *Client) JobTargeted(ctx context.Context, org string, t record.JobTarget, limit int) (int, error) {
	if len(t.Devices) > 0 {
		return len(t.Devices), nil
	}
	ds, err := listDevices(ctx, c, org, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range ds {
		if t.Covers(&ds[i]) {
			n++
		}
	}
	return n, nil
}
