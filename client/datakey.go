package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/thingnet/thingnet/record"
)

// DataKeyRecord answers GET /v1/orgs/{id}/datakey: a version of an
// organisation's data key (Record nil when there is none) and, with
// ?prove=true, the proof of its record (ok/<org>/<version>) and, for the
// current version, of the policy (op/<org>) that names it current, both
// of the state of Height.
type DataKeyRecord struct {
	Height      int64           `json:"height"`
	Record      *record.DataKey `json:"record,omitempty"`
	Proof       *record.Proof   `json:"proof,omitempty"`
	PolicyProof *record.Proof   `json:"policy_proof,omitempty"`
}

// DataKey fetches version of org's data key (0: the current one), with
// proofs if prove. Without prove a missing key is an *Error of status
// 404; with prove it is a record with its absence proof and Record nil.
func (c *Client) DataKey(ctx context.Context, org string, version uint64, prove bool) (*DataKeyRecord, error) {
	q := url.Values{}
	if version != 0 {
		q.Set("version", strconv.FormatUint(version, 10))
	}
	if prove {
		q.Set("prove", "true")
	}
	path := "/v1/orgs/" + url.PathEscape(org) + "/datakey"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out DataKeyRecord
	var body []byte
	err := c.do(ctx, http.MethodGet, path, nil, "", &body)
	if e, ok := err.(*Error); ok && prove && e.Status == http.StatusNotFound && e.Code == "http" {
		body, err = []byte(e.Message), nil // an absence, answered with its proof
	}
	if err != nil {
		return nil, fmt.Errorf("data key of %q at %s: %w", org, c.BaseURL, err)
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decoding the data key of %q: %w", org, err)
	}
	if out.Record != nil && (out.Record.Org != org || version != 0 && out.Record.Version != version) {
		return nil, fmt.Errorf("data key of %q version %d: the node answered with %q version %d", org, version, out.Record.Org, out.Record.Version)
	}
	return &out, nil
}
