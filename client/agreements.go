package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/thingnet/thingnet/record"
)

// AgreementView is an agreement as the API shows it: its record, its
// source, and its state by variable name.
type AgreementView struct {
	record.Agreement
	Source   string         `json:"source"`
	State    map[string]any `json:"state"`
	Escrow   uint64         `json:"escrow"`
	Deposits map[string]any `json:"deposits,omitempty"`
	Grants   any            `json:"grants,omitempty"`
}

// DryRunRequest is the body of POST /v1/agreements/dry-run: an
// agreement.call (ID and Transition set) or an agreement.deploy (Source
// set), as Signer would send it.
type DryRunRequest struct {
	Signer     string                  `json:"signer"`
	ID         uint64                  `json:"id,omitempty"`
	Transition string                  `json:"transition,omitempty"`
	Args       map[string]any          `json:"args,omitempty"` // numbers must be integers
	Reading    *record.ReadingEvidence `json:"reading,omitempty"`
	Source     string                  `json:"source,omitempty"`
	Parties    map[string]string       `json:"parties,omitempty"`
}

// Msg returns the ledger message the request describes.
func (q *DryRunRequest) Msg() (record.Msg, error) {
	if q.Source != "" {
		return &record.AgreementDeploy{Source: []byte(q.Source), Parties: q.Parties}, nil
	}
	args, err := LedgerArgs(q.Args)
	if err != nil {
		return nil, err
	}
	return &record.AgreementCall{ID: q.ID, Transition: q.Transition, Args: args, Reading: q.Reading}, nil
}

// LedgerArgs converts JSON call arguments (json.Number or float64 numbers)
// to the integers, strings and booleans of an agreement.call.
func LedgerArgs(in map[string]any) (map[string]any, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(in))
	for k, v := range in {
		switch x := v.(type) {
		case json.Number:
			n, err := strconv.ParseInt(string(x), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("argument %s: %s is not an integer", k, x)
			}
			out[k] = n
		case float64:
			if x != float64(int64(x)) {
				return nil, fmt.Errorf("argument %s: %v is not an integer", k, x)
			}
			out[k] = int64(x)
		case int64, string, bool:
			out[k] = x
		case int:
			out[k] = int64(x)
		default:
			return nil, fmt.Errorf("argument %s: want an integer, a string or a boolean", k)
		}
	}
	return out, nil
}

// Credits is the answer of GET /v1/credits/{account}.
type Credits struct {
	Account string `json:"account"`
	Balance uint64 `json:"balance"`
}

// Agreement reads an agreement.
func (c *Client) Agreement(ctx context.Context, id uint64) (*AgreementView, error) {
	var rec struct {
		Record AgreementView `json:"record"`
	}
	if err := c.Get(ctx, "/v1/agreements/"+strconv.FormatUint(id, 10), &rec); err != nil {
		return nil, err
	}
	return &rec.Record, nil
}

// Commands lists a device's commands with id above after.
func (c *Client) Commands(ctx context.Context, device string, after uint64) ([]record.Command, error) {
	var p struct {
		Items []record.Command `json:"items"`
	}
	err := c.Get(ctx, "/v1/devices/"+url.PathEscape(device)+"/commands?after="+strconv.FormatUint(after, 10), &p)
	return p.Items, err
}

// Balance returns an account's credits.
func (c *Client) Balance(ctx context.Context, account string) (uint64, error) {
	var rec struct {
		Record Credits `json:"record"`
	}
	err := c.Get(ctx, "/v1/credits/"+url.PathEscape(account), &rec)
	return rec.Record.Balance, err
}
