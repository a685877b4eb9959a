package client

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/thingnet/thingnet/record"
)

// Device health states (docs/management.md, "Fleet health").
const (
	HealthOK     = "ok"     // seen within Missed wake intervals
	HealthSilent = "silent" // seen, but not within Missed wake intervals
	HealthNever  = "never"  // no reading within the look-back window
	// A device that is not active has its status as its state
	// ("suspended", "revoked"): it is not expected to report.
)

// The defaults of fleet health, the same for `fleet status`, the API and
// a gateway's own census (package fleet).
const (
	DefaultFleetWake   = 5 * time.Second // a device's wake interval when its desired configuration sets none
	DefaultFleetMissed = 3               // silent after this many wake intervals without a reading
)

// FleetOptions tunes FleetHealth.
type FleetOptions struct {
	Now      time.Time         // default time.Now()
	Wake     time.Duration     // a device's wake interval when its desired configuration sets none (wake_s); default 5 s
	Missed   int               // silent after this many wake intervals without a reading; default 3
	LookBack time.Duration     // how far back readings are read; default 24 h
	Class    string            // only this class ("" all)
	Labels   map[string]string // only devices with all these labels
	// Since, if set, is a hint for a one-gateway view: a time at or before
	// the device's latest reading and latest status report at that
	// gateway (zero: unknown), from which its readings are read instead of
	// from Now − LookBack — a page instead of a day of readings.
	Since func(device string) time.Time
	Limit int // at most this many devices (default 1,000)
}

// DeviceHealth is one device's health as the gateways asked see it.
type DeviceHealth struct {
	Device     string               `json:"device"`
	Class      string               `json:"class,omitempty"`
	Labels     map[string]string    `json:"labels,omitempty"`
	State      string               `json:"state"`
	Wake       time.Duration        `json:"wake_ns"`
	LastSeen   time.Time            `json:"last_seen,omitzero"`
	Gateway    string               `json:"gateway,omitempty"`      // the gateway that saw it last
	LastSeenBy map[string]time.Time `json:"last_seen_by,omitempty"` // per gateway asked
	Status     *record.StatusReport `json:"status,omitempty"`       // its last status report
}

// Fleet is an organisation's fleet health: every device (silent ones
// first) and the counts by class and state.
type Fleet struct {
	Org     string                    `json:"org"`
	Now     time.Time                 `json:"now"`
	Missed  int                       `json:"missed"`
	Devices []DeviceHealth            `json:"devices"`
	Counts  map[string]map[string]int `json:"counts"` // class -> state -> devices
	// Public says that this is the public view (GET /v1/fleet/{org} to a
	// caller who is not signed in, or ?view=counts): the gateway's own
	// census counts, no device and no value.
	Public bool `json:"public,omitempty"`
}

// FleetHealth reads org's devices from the ledger (through the first
// client), each one's wake interval from its desired configuration, and
// its readings from every gateway in gws (the network's view: each
// gateway knows only what it stored), under the read rule: the clients'
// identity must be allowed to read the devices' readings.
func FleetHealth(ctx context.Context, gws []*Client, org string, o FleetOptions) (*Fleet, error) {
	if len(gws) == 0 {
		return nil, fmt.Errorf("client: fleet health needs at least one gateway")
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Wake <= 0 {
		o.Wake = DefaultFleetWake
	}
	if o.Missed <= 0 {
		o.Missed = DefaultFleetMissed
	}
	if o.LookBack <= 0 {
		o.LookBack = 24 * time.Hour
	}
	if o.Limit <= 0 {
		o.Limit = 1000
	}
	devs, err := listDevices(ctx, gws[0], org, o.Limit)
	if err != nil {
		return nil, err
	}
	f := &Fleet{Org: org, Now: o.Now, Missed: o.Missed, Devices: []DeviceHealth{}, Counts: map[string]map[string]int{}}
	for _, d := range devs {
		if o.Class != "" && d.Class != o.Class || !hasLabels(d.Labels, o.Labels) {
			continue
		}
		h := DeviceHealth{Device: d.ID, Class: d.Class, Labels: d.Labels, Wake: o.Wake, LastSeenBy: map[string]time.Time{}}
		if des, err := gws[0].Desired(ctx, d.ID); err == nil {
			h.Wake = WakeOf(des.Settings, o.Wake)
		}
		from := o.Now.Add(-o.LookBack)
		if o.Since != nil && len(gws) == 1 {
			if t := o.Since(d.ID); t.After(from) {
				from = t
			}
		}
		for _, gw := range gws {
			last, st, err := lastReading(ctx, gw, d.ID, from)
			if err != nil {
				return nil, fmt.Errorf("readings of %s at %s: %w", d.ID, gw.BaseURL, err)
			}
			if last.IsZero() {
				continue
			}
			h.LastSeenBy[gw.BaseURL] = last
			if last.After(h.LastSeen) {
				h.LastSeen, h.Gateway = last, gw.BaseURL
				if st != nil {
					h.Status = st
				}
			}
		}
		h.State = HealthState(d.Status, h.LastSeen, h.Wake, o.Missed, o.Now)
		f.Devices = append(f.Devices, h)
		if f.Counts[d.Class] == nil {
			f.Counts[d.Class] = map[string]int{}
		}
		f.Counts[d.Class][h.State]++
	}
	rank := map[string]int{HealthSilent: 0, HealthNever: 1, HealthOK: 2}
	sort.SliceStable(f.Devices, func(i, j int) bool {
		a, b := f.Devices[i], f.Devices[j]
		ra, oka := rank[a.State]
		rb, okb := rank[b.State]
		if !oka {
			ra = 3
		}
		if !okb {
			rb = 3
		}
		if ra != rb {
			return ra < rb
		}
		return a.LastSeen.Before(b.LastSeen)
	})
	return f, nil
}

// ParseLabels reads key=value labels (a fleet filter) into a map.
func ParseLabels(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range kvs {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", l)
		}
		out[k] = v
	}
	return out, nil
}

// hasLabels says whether labels hold every key of want with its value.
func hasLabels(labels, want map[string]string) bool {
	for k, v := range want {
		if l, ok := labels[k]; !ok || l != v {
			return false
		}
	}
	return true
}

// WakeOf is the wake interval a desired configuration sets (wake_s, whole
// seconds, at least 1), else def.
func WakeOf(settings map[string]any, def time.Duration) time.Duration {
	var s float64
	switch v := settings["wake_s"].(type) {
	case float64:
		s = v
	case int64:
		s = float64(v)
	case uint64:
		s = float64(v)
	case int:
		s = float64(v)
	}
	if s < 1 {
		return def
	}
	return time.Duration(s) * time.Second
}

// HealthState is a device's state: its status if it is not active;
// never seen; silent when its last reading is more than missed wake
// intervals before now; else ok.
func HealthState(status record.Status, last time.Time, wake time.Duration, missed int, now time.Time) string {
	switch {
	case status != record.StatusActive:
		return string(status)
	case last.IsZero():
		return HealthNever
	case now.Sub(last) > time.Duration(missed)*wake:
		return HealthSilent
	}
	return HealthOK
}

func listDevices(ctx context.Context, c *Client, org string, limit int) ([]record.Device, error) {
	var out []record.Device
	after := ""
	for len(out) < limit {
		var p struct {
			Items []record.Device `json:"items"`
			Next  string          `json:"next"`
		}
		q := url.Values{"org": {org}, "limit": {strconv.Itoa(min(1000, limit-len(out)))}}
		if after != "" {
			q.Set("after", after)
		}
		if err := c.Get(ctx, "/v1/devices?"+q.Encode(), &p); err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	return out, nil
}

// lastReading returns the time of device's last reading at this gateway
// since from (zero: none) and its last status report, reading at most 20
// pages of 1,000.
func lastReading(ctx context.Context, c *Client, device string, from time.Time) (time.Time, *record.StatusReport, error) {
	var last time.Time
	var st *record.StatusReport
	err := c.eachReading(ctx, device, from, 20, func(it ReadingItem) {
		if it.Time.After(last) {
			last = it.Time
		}
		if it.ContentType == record.ContentStatus {
			if s, err := record.DecodeStatusReport(it.Bytes); err == nil {
				st = s
			}
		}
	})
	return last, st, err
}

// eachReading calls fn with each of device's readings at this gateway
// from time from on, oldest first, reading at most maxPages pages of
// 1,000 (GET /v1/readings?device=, under the read rule).
func (c *Client) eachReading(ctx context.Context, device string, from time.Time, maxPages int, fn func(ReadingItem)) error {
	ms := from.UnixMilli()
	seen := map[[2]uint64]bool{}
	for range max(maxPages, 1) {
		var p struct {
			Items []ReadingItem `json:"items"`
		}
		q := url.Values{"device": {device}, "from": {strconv.FormatInt(ms, 10)}, "limit": {"1000"}}
		if err := c.Get(ctx, "/v1/readings?"+q.Encode(), &p); err != nil {
			return err
		}
		fresh := 0
		for _, it := range p.Items {
			k := [2]uint64{it.Index, it.Seq}
			if seen[k] {
				continue
			}
			seen[k], fresh = true, fresh+1
			ms = it.Time.UnixMilli()
			fn(it)
		}
		if fresh == 0 || len(p.Items) < 1000 {
			return nil
		}
	}
	return nil
}
