// Package relay feeds proven readings to the agreements that watch them:
// it follows the readings a gateway stores for each device an agreement's
// reading trigger names, waits until an anchor covers each, asks the node
// which transition the reading would fire (a dry run), and sends that
// agreement.call with the reading's proof. Anyone may run a relayer: the
// proof, not the relayer, is what the ledger trusts, and an agreement never
// uses a reading twice.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/thingnet/thingnet/agreements/lang"
	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// Config configures a relayer.
type Config struct {
	// Client talks to a node that runs a gateway (readings and their
	// proofs) and the ledger API.
	Client *client.Client
	// Key signs the agreement calls (any key: a did:key pays no fee).
	Key *identity.Key
	// Agreements are the ids to serve.
	Agreements []uint64
	// Since skips readings the devices timed before it (zero: none).
	Since time.Time
	// Poll is how often Run looks for new readings; default 200 ms.
	Poll   time.Duration
	Logger *slog.Logger
}

// Relayer relays readings to agreements. Not safe for concurrent Steps.
type Relayer struct {
	cfg  Config
	log  *slog.Logger
	seen map[string]cursor // per device id
}

// cursor is how far a device's readings were handled.
type cursor struct {
	time time.Time
	seq  uint64
}

// New returns a relayer.
func New(c Config) (*Relayer, error) {
	if c.Client == nil || c.Key == nil || len(c.Agreements) == 0 {
		return nil, errors.New("relay: Config needs Client, Key and Agreements")
	}
	if c.Poll <= 0 {
		c.Poll = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Client.Identity == nil {
		// The relayer reads the readings it relays as the key that signs
		// the calls: a party that may read them (a read grant, an admin).
		c.Client = c.Client.WithIdentity(&client.Identity{Key: c.Key})
	}
	return &Relayer{cfg: c, log: c.Logger, seen: map[string]cursor{}}, nil
}

// Run relays until ctx ends. Errors of one pass are logged and retried.
func (r *Relayer) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	for {
		if _, err := r.Step(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("relay pass failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// watch is a reading trigger of an agreement.
type watch struct {
	agreement   uint64
	transition  string
	device      string
	contentType string
}

// Step makes one pass: every new, anchored reading of a watched device is
// offered to the transitions watching it, in agreement and document order;
// the first whose dry run succeeds is called. It returns the calls sent.
func (r *Relayer) Step(ctx context.Context) (int, error) {
	watches, err := r.watches(ctx)
	if err != nil {
		return 0, err
	}
	var devices []string
	for _, w := range watches {
		if !slices.Contains(devices, w.device) {
			devices = append(devices, w.device)
		}
	}
	sent := 0
	for _, dev := range devices {
		n, err := r.device(ctx, dev, watches)
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// watches lists the reading triggers of the active agreements served.
func (r *Relayer) watches(ctx context.Context) ([]watch, error) {
	var out []watch
	for _, id := range r.cfg.Agreements {
		a, err := r.cfg.Client.Agreement(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("agreement %d: %w", id, err)
		}
		if a.Status != record.AgreementActive {
			continue
		}
		d, err := lang.Parse([]byte(a.Source))
		if err != nil {
			return nil, fmt.Errorf("agreement %d: %w", id, err)
		}
		for _, t := range d.Transitions {
			if t.Trigger.Kind != lang.TriggerReading {
				continue
			}
			for _, p := range a.Parties {
				if p.Name == t.Trigger.Device {
					out = append(out, watch{agreement: id, transition: t.Name, device: p.Principal[len("device:"):], contentType: t.Trigger.ContentType})
				}
			}
		}
	}
	return out, nil
}

// device handles a device's readings after its cursor.
func (r *Relayer) device(ctx context.Context, dev string, watches []watch) (int, error) {
	cur, ok := r.seen[dev]
	if !ok {
		cur.time = r.cfg.Since
	}
	q := url.Values{"device": {dev}, "limit": {"100"}}
	if !cur.time.IsZero() {
		q.Set("from", strconv.FormatInt(cur.time.UnixMilli(), 10))
	}
	var list struct {
		Items []client.ReadingItem `json:"items"`
	}
	if err := r.cfg.Client.Get(ctx, "/v1/readings?"+q.Encode(), &list); err != nil {
		return 0, fmt.Errorf("readings of %s: %w", dev, err)
	}
	sent := 0
	for _, it := range list.Items {
		if it.Seq <= cur.seq || it.Time.Before(r.cfg.Since) {
			continue
		}
		if it.Value != nil {
			ev, err := r.evidence(ctx, it)
			if errors.Is(err, errNotAnchored) {
				return sent, nil // later, from this reading on
			}
			if err != nil {
				return sent, err
			}
			ok, err := r.offer(ctx, it, ev, watches)
			if err != nil {
				return sent, err
			}
			if ok {
				sent++
			}
		}
		cur = cursor{time: it.Time, seq: it.Seq}
		r.seen[dev] = cur
	}
	return sent, nil
}

var errNotAnchored = errors.New("not anchored yet")

// evidence fetches a reading's proof and turns it into an agreement.call's evidence.
func (r *Relayer) evidence(ctx context.Context, it client.ReadingItem) (*record.ReadingEvidence, error) {
	p, err := r.cfg.Client.Reading(ctx, it.Index)
	if err == nil {
		err = p.Err()
	}
	if errors.Is(err, proof.ErrNotAnchored) {
		return nil, errNotAnchored
	}
	if err != nil {
		return nil, fmt.Errorf("proof of reading %d: %w", it.Index, err)
	}
	env, err := reading.Decode(p.Envelope)
	if err != nil {
		return nil, fmt.Errorf("reading %d: %w", it.Index, err)
	}
	item := slices.IndexFunc(env.Readings, func(rd reading.Reading) bool { return rd.Seq == it.Seq })
	if item < 0 {
		return nil, fmt.Errorf("reading %d holds no seq %d", it.Index, it.Seq)
	}
	return p.Evidence(uint32(item)), nil
}

// offer dry-runs the watching transitions and calls the first that would succeed.
func (r *Relayer) offer(ctx context.Context, it client.ReadingItem, ev *record.ReadingEvidence, watches []watch) (bool, error) {
	for _, w := range watches {
		if w.device != it.Device || (w.contentType != "" && w.contentType != it.ContentType) {
			continue
		}
		dr, err := api.DryRun(ctx, r.cfg.Client, &client.DryRunRequest{Signer: r.cfg.Key.ID(), ID: w.agreement, Transition: w.transition, Reading: ev})
		if err != nil {
			return false, err
		}
		if !dr.OK {
			r.log.Debug("reading does not fire", "agreement", w.agreement, "transition", w.transition, "seq", it.Seq, "why", dr.Error)
			continue
		}
		res, err := r.cfg.Client.Send(ctx, r.cfg.Key, "", &record.AgreementCall{ID: w.agreement, Transition: w.transition, Reading: ev}, true)
		if err != nil {
			var e *client.Error
			if errors.As(err, &e) && e.Status < 500 {
				// Refused on the committed state (a concurrent change): not ours to retry.
				r.log.Info("call refused", "agreement", w.agreement, "transition", w.transition, "seq", it.Seq, "err", err)
				return false, nil
			}
			return false, err
		}
		r.log.Info("reading relayed", "agreement", w.agreement, "transition", w.transition, "device", it.Device, "seq", it.Seq, "height", res.Height)
		return true, nil
	}
	return false, nil
}
