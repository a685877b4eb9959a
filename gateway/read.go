package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// Reading values are served by the read rule (ledger.State.MayRead) to
// callers authenticated by api.Caller; every read path of the gateway
// (list, get, stream, MQTT subscriptions) asks through here.

// mayRead authenticates r's caller and applies the read rule to device's
// readings, counting one read against the quota of the grant that allows
// it. It returns the caller ("" if anonymous), or the error to answer:
// 401 for an anonymous caller or a token that does not check, 403 for an
// authenticated caller the rule refuses, 429 past a grant's quota, 404 for
// an unknown device.
func (g *Gateway) mayRead(r *http.Request, device string) (string, error) {
	if device == "" {
		return "", api.NewError(http.StatusBadRequest, "bad_request", "device is required: ?device=DID")
	}
	st, caller, err := g.caller(r)
	if err != nil {
		return "", err
	}
	d, err := st.Device(device)
	if errors.Is(err, ledger.ErrNotFound) {
		return "", api.NewError(http.StatusNotFound, "not_found", fmt.Sprintf("no device %s on the ledger", device))
	}
	if err != nil {
		return "", err
	}
	ok, err := g.allowRead(st, caller, d)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", api.Refuse(caller, "the readings of "+device)
	}
	return caller, nil
}

// MayRead is mayRead for the node's other read paths over readings (rule
// firings): the caller, or the error to answer.
func (g *Gateway) MayRead(r *http.Request, device string) (string, error) {
	return g.mayRead(r, device)
}

// caller is the ledger's latest state and r's caller in it ("" if
// anonymous; an error for a token that does not check).
func (g *Gateway) caller(r *http.Request) (*ledger.State, string, error) {
	st, err := g.ledger.View()
	if err != nil {
		return nil, "", err
	}
	caller, err := api.Caller(r, st, g.ledger.ChainID(), g.clock.Now())
	return st, caller, err
}

// allowRead applies the read rule and counts a granted read against its
// grant's daily quota; past the quota it answers 429.
func (g *Gateway) allowRead(st *ledger.State, caller string, d *record.Device) (bool, error) {
	acc, err := st.MayRead(caller, d)
	if err != nil || !acc.Allowed {
		return false, err
	}
	if acc.Grant != nil && acc.Grant.Quota > 0 && !g.reads.spend(acc.Grant, g.clock.Now()) {
		return false, api.NewError(http.StatusTooManyRequests, "quota_exceeded",
			fmt.Sprintf("read grant %d allows %d reads a day at each gateway; they are spent for today (UTC)", acc.Grant.ID, acc.Grant.Quota))
	}
	return true, nil
}

// readQuotas counts reads per grant and UTC day at this gateway: a grant's
// quota is enforced at each gateway, as grants' quotas are at the edge.
type readQuotas struct {
	mu   sync.Mutex
	used map[uint64]dayCount
}

type dayCount struct {
	day int64
	n   uint64
}

// spend counts one read of g on the day of now; false past its quota.
func (q *readQuotas) spend(g *record.Grant, now time.Time) bool {
	day := now.UTC().Unix() / 86400
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.used == nil {
		q.used = map[uint64]dayCount{}
	}
	c := q.used[g.ID]
	if c.day != day {
		// A new day: forget yesterday's counts of every grant, so the map
		// holds only grants read today.
		for id, o := range q.used {
			if o.day != day {
				delete(q.used, id)
			}
		}
		c = dayCount{day: day}
	}
	if c.n >= g.Quota {
		return false
	}
	c.n++
	q.used[g.ID] = c
	return true
}
