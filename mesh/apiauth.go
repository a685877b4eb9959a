package mesh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
	"github.com/thingnet/thingnet/record"
)

// APIAuthority answers from a node's API: for the CLI and for devices that
// trust the node they talk to. A device that trusts no node verifies
// proofs with a light client instead (the device SDK).
type APIAuthority struct {
	Client  *client.Client
	Chain   string
	Timeout time.Duration // per request; default 10s
}

// NewAPIAuthority asks the node for its chain id.
func NewAPIAuthority(ctx context.Context, c *client.Client) (*APIAuthority, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("mesh: asking the node for its chain: %w", err)
	}
	return &APIAuthority{Client: c, Chain: st.ChainID, Timeout: 10 * time.Second}, nil
}

// ChainID is the node's chain id.
func (a *APIAuthority) ChainID() string { return a.Chain }

func (a *APIAuthority) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), a.Timeout)
}

// Device fetches a device record.
func (a *APIAuthority) Device(id string) (*message.Device, error) {
	ctx, cancel := a.ctx()
	defer cancel()
	var rec struct {
		Record record.Device `json:"record"`
	}
	err := a.Client.Get(ctx, "/v1/devices/"+url.PathEscape(id), &rec)
	var ae *client.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil, fmt.Errorf("%w: %s", message.ErrUnknownSender, id)
	}
	if err != nil {
		return nil, err
	}
	d := rec.Record
	key, err := identity.ParseDID(d.Key)
	if err != nil {
		return nil, fmt.Errorf("device %s has an unreadable key: %w", id, err)
	}
	return &message.Device{ID: d.ID, Org: d.Org, Class: d.Class, Key: key, Active: d.Status == record.StatusActive,
		AttestedBy: d.AttestedBy, Labels: d.Labels}, nil
}

// Granted looks for a grant in force, as LedgerAuthority.Granted does.
func (a *APIAuthority) Granted(sender *message.Device, action, resource string) (bool, error) {
	resources := []string{resource}
	if id, ok := strings.CutPrefix(resource, "device:"); ok {
		d, err := a.Device(id)
		if err != nil {
			return false, err
		}
		resources = append(resources, "org:"+d.Org)
	} else if owner, _, ok := strings.Cut(resource, "/"); ok {
		resources = append(resources, owner)
	}
	actions := []string{action}
	if action == message.KindMessage {
		actions = append(actions, message.KindCommand)
	}
	ctx, cancel := a.ctx()
	defer cancel()
	for _, subject := range []string{"device:" + sender.ID, "org:" + sender.Org} {
		for _, act := range actions {
			for _, res := range resources {
				var page struct {
					Height int64          `json:"height"`
					Items  []record.Grant `json:"items"`
				}
				q := url.Values{"subject": {subject}, "action": {act}, "resource": {res}}
				if err := a.Client.Get(ctx, "/v1/grants?"+q.Encode(), &page); err != nil {
					return false, err
				}
				for _, g := range page.Items {
					if g.ActiveAt(page.Height + 1) {
						return true, nil
					}
				}
			}
		}
	}
	return false, nil
}
