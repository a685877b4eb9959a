package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// feed fans stored readings out to live subscribers. A subscriber that
// falls behind loses readings (and is told so) rather than slowing the
// gateway down.
type feed struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	device string
	ch     chan client.ReadingItem
	lost   int // readings dropped because ch was full; guarded by feed.mu
}

// subscriberBuffer is how many readings a slow subscriber may fall behind.
const subscriberBuffer = 256

func (f *feed) subscribe(device string) *subscriber {
	s := &subscriber{device: device, ch: make(chan client.ReadingItem, subscriberBuffer)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[*subscriber]struct{}{}
	}
	f.subs[s] = struct{}{}
	return s
}

func (f *feed) unsubscribe(s *subscriber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, s)
}

// publish offers the readings of stored envelopes to their subscribers.
func (f *feed) publish(first uint64, envs []*reading.Envelope) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) == 0 {
		return
	}
	for k, env := range envs {
		for _, r := range env.Readings {
			item := client.ReadingItem{Index: first + uint64(k), Device: env.Device, Seq: r.Seq, Time: r.Time, ContentType: r.ContentType, Value: r.Value, Bytes: r.Bytes}
			for s := range f.subs {
				if s.device != env.Device {
					continue
				}
				select {
				case s.ch <- item:
				default:
					s.lost++
				}
			}
		}
	}
}

// caller authenticates an HTTP caller by "Authorization: Bearer <CWT>" (the
// CWT of a device, signed by its current key, or of any did:key, e.g. an
// organisation admin's) and returns its id.
func (g *Gateway) caller(r *http.Request, st *ledger.State) (string, error) {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", fmt.Errorf("%w: send Authorization: Bearer <CWT> (thingnet device token)", ErrBadToken)
	}
	tok, err := identity.CWTFromPassword([]byte(auth))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	_, claims, err := identity.ParseCWT(tok)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	id := claims.Subject
	var pub identity.PublicKey
	if _, err := st.Device(id); err == nil {
		if _, pub, err = g.activeDevice(st, id); err != nil {
			return "", err
		}
	} else if pub, err = identity.ParseDID(id); err != nil {
		return "", fmt.Errorf("%w: %s is neither a device nor a did:key", ErrUnknownDevice, id)
	}
	if _, err := identity.VerifyCWT(tok, pub, g.ledger.ChainID(), g.clock.Now(), TokenSkew); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	return id, nil
}

// mayRead reports whether caller may read device's readings: the device
// itself, an admin of its organisation, or the holder of a read grant (for
// itself, or for an organisation it is a device or an admin of).
func mayRead(st *ledger.State, caller string, d *record.Device) (bool, error) {
	if caller == d.ID {
		return true, nil
	}
	subjects := []string{"device:" + caller}
	if cd, err := st.Device(caller); err == nil {
		subjects = append(subjects, "org:"+cd.Org)
	} else {
		orgs, err := st.AdminOrgs(caller)
		if err != nil {
			return false, err
		}
		for _, o := range orgs {
			if o == d.Org {
				return true, nil
			}
			subjects = append(subjects, "org:"+o)
		}
	}
	resources := []string{"device:" + d.ID + "/readings", "device:" + d.ID, "org:" + d.Org}
	for _, s := range subjects {
		if ok, err := st.HasGrant(s, "read", resources, st.Height+1); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// stream serves GET /v1/readings/stream?device=ID as server-sent events:
// every reading of the device the gateway stores from now on, while the
// caller may read them (re-checked against each new ledger state).
func (g *Gateway) stream(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code string, err error) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": err.Error()}})
	}
	device := r.URL.Query().Get("device")
	st, err := g.ledger.View()
	if err != nil {
		fail(http.StatusServiceUnavailable, "no_state", err)
		return
	}
	d, err := st.Device(device)
	if err != nil {
		fail(http.StatusNotFound, "not_found", fmt.Errorf("device %q: %w", device, err))
		return
	}
	caller, err := g.caller(r, st)
	if err != nil {
		fail(http.StatusUnauthorized, "unauthenticated", err)
		return
	}
	if ok, err := mayRead(st, caller, d); err != nil || !ok {
		fail(http.StatusForbidden, "unauthorized", fmt.Errorf("%s may not read %s's readings (no read grant)", caller, device))
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		fail(http.StatusInternalServerError, "internal", errors.New("streaming unsupported"))
		return
	}
	sub := g.feed.subscribe(device)
	defer g.feed.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": streaming readings of %s\n\n", device)
	flusher.Flush()
	ctx := r.Context()
	lastHeight := st.Height
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.done:
			return
		case item := <-sub.ch:
			if st, err := g.ledger.View(); err == nil && st.Height != lastHeight {
				lastHeight = st.Height
				d, err := st.Device(device)
				if err != nil {
					return
				}
				if ok, err := mayRead(st, caller, d); err != nil || !ok {
					fmt.Fprintf(w, "event: revoked\ndata: {}\n\n")
					flusher.Flush()
					return
				}
			}
			b, _ := json.Marshal(item)
			fmt.Fprintf(w, "event: reading\nid: %d\ndata: %s\n\n", item.Index, b)
			flusher.Flush()
		}
	}
}
