// Package webhook is the webhook sink of the export connectors: one
// signed HTTP POST per reading (export.Message, JSON), retried with
// exponential back-off and jitter, each attempt bounded by a timeout, at
// most Rate deliveries a second to the endpoint; a delivery that fails
// MaxAttempts times goes to a persistent dead-letter list (a file per
// delivery) and the export moves on. The checkpoint (a local file) moves
// once every delivery of a batch is made or dead-lettered: at least
// once, and a receiver de-duplicates by the Thingnet-Delivery header.
//
// Each webhook export runs on its own goroutine and reads the gateway
// through its HTTP API: a slow or dead endpoint holds back only its own
// export, never ingest or the other exports.
package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/thingnet/thingnet/export"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/atomicfile"
)

// Headers of a delivery (docs/protocol.md, "Webhook deliveries").
const (
	HeaderDelivery  = "Thingnet-Delivery"  // <gateway>/<log index>/<seq>: the de-duplication id
	HeaderTimestamp = "Thingnet-Timestamp" // Unix seconds when the attempt was signed
	HeaderSignature = "Thingnet-Signature" // keyid="<did:key>", sig="<base64 signature>"
)

// SignedBytes are the bytes a delivery's signature covers.
func SignedBytes(timestamp, delivery string, body []byte) []byte {
	b := make([]byte, 0, 24+len(timestamp)+len(delivery)+len(body))
	b = append(b, "thingnet-webhook-v1\n"...)
	b = append(b, timestamp...)
	b = append(b, '\n')
	b = append(b, delivery...)
	b = append(b, '\n')
	return append(b, body...)
}

// SignRequest sets the headers of a delivery of body with id delivery: the
// id, the time (now, Unix seconds) and k's signature over SignedBytes,
// naming keyID (k's did:key on the ledger). Every thingnet webhook — the
// export connector's and the rules' — is signed by it; Verify checks it.
func SignRequest(h http.Header, k *identity.Key, keyID, delivery string, now time.Time, body []byte) error {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig, err := k.Sign(SignedBytes(ts, delivery, body))
	if err != nil {
		return fmt.Errorf("webhook: signing delivery %s: %w", delivery, err)
	}
	h.Set(HeaderDelivery, delivery)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, fmt.Sprintf("keyid=%q, sig=%q", keyID, base64.StdEncoding.EncodeToString(sig)))
	return nil
}

// Config configures a Sink.
type Config struct {
	URL      string
	StateDir string        // checkpoint and dead letters
	Key      *identity.Key // signs the deliveries
	KeyID    string        // the id the key signs as (default Key.ID())
	// Timeout bounds one attempt (default 5s).
	Timeout time.Duration
	// MaxAttempts before a delivery is dead-lettered (default 6).
	MaxAttempts int
	// Backoff is the first retry's wait, doubling up to MaxBackoff, with
	// jitter (defaults 500ms and 30s).
	Backoff, MaxBackoff time.Duration
	// Rate is the most deliveries a second to the endpoint, Burst how
	// many may go at once (defaults 50 and 10).
	Rate  float64
	Burst int
	// HTTP is the client (default a plain one; Timeout applies per attempt).
	HTTP *http.Client
}

// Deliverer makes signed deliveries to one endpoint: each attempt within
// Timeout and the rate limit, retried with back-off up to MaxAttempts (a
// 4xx answer other than 408 and 429 is not retried: trying again cannot
// help), then kept as a dead letter. The export sink and the rules'
// webhooks (package rules) both deliver through it.
type Deliverer struct {
	c       Config
	limit   *rate.Limiter
	dead    *DeadLetters
	retried atomic.Uint64 // attempts after a first one
	deadN   atomic.Uint64 // deliveries dead-lettered
}

// Sink delivers readings to one endpoint.
type Sink struct {
	*Deliverer
}

var _ export.Sink = (*Sink)(nil)

// Open prepares the sink's state directory.
func Open(c Config) (*Sink, error) {
	d, err := NewDeliverer(c)
	if err != nil {
		return nil, err
	}
	return &Sink{d}, nil
}

// NewDeliverer prepares a deliverer's dead-letter list in c.StateDir.
func NewDeliverer(c Config) (*Deliverer, error) {
	if c.URL == "" || c.StateDir == "" || c.Key == nil {
		return nil, errors.New("webhook: Config.URL, StateDir and Key are required")
	}
	if c.KeyID == "" {
		c.KeyID = c.Key.ID()
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 6
	}
	if c.Backoff <= 0 {
		c.Backoff = 500 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Rate <= 0 {
		c.Rate = 50
	}
	if c.Burst <= 0 {
		c.Burst = 10
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{}
	}
	dead, err := OpenDeadLetters(c.StateDir)
	if err != nil {
		return nil, err
	}
	return &Deliverer{c: c, limit: rate.NewLimiter(rate.Limit(c.Rate), c.Burst), dead: dead}, nil
}

// Retried is how many attempts were retries; DeadLettered how many
// deliveries went to the dead-letter list.
func (s *Deliverer) Retried() uint64      { return s.retried.Load() }
func (s *Deliverer) DeadLettered() uint64 { return s.deadN.Load() }

// DeadLetters is the deliverer's dead-letter list.
func (s *Deliverer) DeadLetters() *DeadLetters { return s.dead }

// Send delivers body as delivery id (signed, retried); if every attempt
// fails it is dead-lettered and the error returned. It returns ctx's
// error, and keeps nothing, when ctx ends first.
func (s *Deliverer) Send(ctx context.Context, id string, body []byte) error {
	d := &Letter{ID: id, URL: s.c.URL, Body: body}
	err := s.deliver(ctx, d)
	if err == nil || ctx.Err() != nil {
		return err
	}
	d.LastError, d.At = err.Error(), time.Now().UTC()
	if err := s.dead.add(d); err != nil {
		return err
	}
	s.deadN.Add(1)
	return fmt.Errorf("%w: delivery %s, after %d attempts: %w", ErrDeadLettered, id, d.Attempts, err)
}

func (s *Sink) checkpointPath(gateway string) string {
	return filepath.Join(s.c.StateDir, "checkpoint-"+hex.EncodeToString([]byte(gateway)))
}

// Checkpoint implements export.Sink.
func (s *Sink) Checkpoint(_ context.Context, gateway string) (uint64, bool, error) {
	b, err := os.ReadFile(s.checkpointPath(gateway))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("webhook: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("webhook: checkpoint %s is %q, not a log index", s.checkpointPath(gateway), b)
	}
	return n, true, nil
}

// Write implements export.Sink: every row delivered or dead-lettered,
// then the checkpoint moved.
func (s *Sink) Write(ctx context.Context, b *export.Batch) error {
	if cp, found, err := s.Checkpoint(ctx, b.Gateway); err != nil {
		return err
	} else if found && cp != b.From {
		return fmt.Errorf("%w: %s is at %d, the batch starts at %d", export.ErrCheckpointMoved, b.Gateway, cp, b.From)
	}
	for i := range b.Rows {
		r := &b.Rows[i]
		body, err := json.Marshal(r.Message())
		if err != nil {
			return err
		}
		if err := s.Send(ctx, r.Key(), body); err != nil && ctx.Err() != nil {
			return ctx.Err()
		} else if err != nil && !errors.Is(err, ErrDeadLettered) {
			return err
		}
	}
	return writeFile(s.checkpointPath(b.Gateway), []byte(strconv.FormatUint(b.Next, 10)+"\n"))
}

// deliver attempts d up to MaxAttempts times.
func (s *Deliverer) deliver(ctx context.Context, d *Letter) error {
	var err error
	for n := 1; n <= s.c.MaxAttempts; n++ {
		if n > 1 {
			s.retried.Add(1)
			t := time.NewTimer(export.Backoff(n-1, s.c.Backoff, s.c.MaxBackoff))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		d.Attempts++
		if err = s.attempt(ctx, d); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errFinal) {
			return err
		}
	}
	return err
}

// ErrDeadLettered is the error of a delivery that Send gave up on and kept
// as a dead letter.
var ErrDeadLettered = errors.New("webhook: dead-lettered")

// errFinal marks an answer that trying again cannot change: a 4xx other
// than 408 (timeout) and 429 (too many requests).
var errFinal = errors.New("not retried")

// attempt makes one signed POST of d, within the rate limit and the timeout.
func (s *Deliverer) attempt(ctx context.Context, d *Letter) error {
	if err := s.limit.Wait(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return err
	}
	if err := SignRequest(req.Header, s.c.Key, s.c.KeyID, d.ID, time.Now(), d.Body); err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("%s answered %s (%w)", d.URL, resp.Status, errFinal)
	}
	return fmt.Errorf("%s answered %s", d.URL, resp.Status)
}

// Redeliver attempts a dead letter once more, now; on success it is
// removed from the list.
func (s *Deliverer) Redeliver(ctx context.Context, id string) error {
	d, err := s.dead.Get(id)
	if err != nil {
		return err
	}
	if err := s.deliver(ctx, d); err != nil {
		d.LastError, d.At = err.Error(), time.Now().UTC()
		if err2 := s.dead.add(d); err2 != nil {
			return errors.Join(err, err2)
		}
		return fmt.Errorf("webhook: delivery %s failed again: %w", id, err)
	}
	return s.dead.Drop(id)
}

// Close implements export.Sink.
func (s *Sink) Close() error { return nil }

// Verify checks a delivery's signature headers against pub, the public
// key of the id in keyid (on the ledger: the exporting node's key), and
// that it was signed within maxAge of now. It returns the key id.
func Verify(h http.Header, body []byte, pub func(keyID string) (identity.PublicKey, error), now time.Time, maxAge time.Duration) (string, error) {
	keyID, sig, err := parseSignature(h.Get(HeaderSignature))
	if err != nil {
		return "", err
	}
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", fmt.Errorf("webhook: %s %q is not Unix seconds", HeaderTimestamp, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxAge || d < -maxAge {
		return "", fmt.Errorf("webhook: signed %v from now; accepted within %v", d, maxAge)
	}
	k, err := pub(keyID)
	if err != nil {
		return "", fmt.Errorf("webhook: the key of %s: %w", keyID, err)
	}
	if err := k.Verify(SignedBytes(ts, h.Get(HeaderDelivery), body), sig); err != nil {
		return "", fmt.Errorf("webhook: the signature of %s does not verify: %w", keyID, err)
	}
	return keyID, nil
}

// parseSignature parses `keyid="...", sig="..."`.
func parseSignature(v string) (keyID string, sig []byte, err error) {
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		uq, err := strconv.Unquote(val)
		if err != nil {
			return "", nil, fmt.Errorf("webhook: %s: %s is not a quoted string", HeaderSignature, k)
		}
		switch k {
		case "keyid":
			keyID = uq
		case "sig":
			if sig, err = base64.StdEncoding.DecodeString(uq); err != nil {
				return "", nil, fmt.Errorf("webhook: %s: sig is not base64", HeaderSignature)
			}
		}
	}
	if keyID == "" || sig == nil {
		return "", nil, fmt.Errorf("webhook: %s must hold keyid=\"...\" and sig=\"...\"", HeaderSignature)
	}
	return keyID, sig, nil
}

// Letter is a dead letter: a delivery that failed every attempt.
type Letter struct {
	ID        string          `json:"id"` // the delivery id (gateway/index/seq)
	URL       string          `json:"url"`
	Body      json.RawMessage `json:"body"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error"`
	At        time.Time       `json:"at"` // when it was last dead-lettered
}

// DeadLetters is a dead-letter list: one JSON file per delivery in a
// directory, written durably (fsync, then rename).
type DeadLetters struct{ dir string }

// OpenDeadLetters opens (creates) the list of a webhook export's state
// directory.
func OpenDeadLetters(stateDir string) (*DeadLetters, error) {
	dir := filepath.Join(stateDir, "dead-letters")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &DeadLetters{dir: dir}, nil
}

func (l *DeadLetters) path(id string) string {
	return filepath.Join(l.dir, hex.EncodeToString([]byte(id))+".json")
}

func (l *DeadLetters) add(d *Letter) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return writeFile(l.path(d.ID), b)
}

// List returns the dead letters, oldest first.
func (l *DeadLetters) List() ([]Letter, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	var out []Letter
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(l.dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("webhook: %w", err)
		}
		var d Letter
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("webhook: dead letter %s: %w", e.Name(), err)
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

// Get returns the dead letter of delivery id.
func (l *DeadLetters) Get(id string) (*Letter, error) {
	b, err := os.ReadFile(l.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("webhook: no dead letter %q (`thingnet export dead-letters` lists them)", id)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	var d Letter
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("webhook: dead letter %s: %w", id, err)
	}
	return &d, nil
}

// Drop removes the dead letter of delivery id.
func (l *DeadLetters) Drop(id string) error {
	if err := os.Remove(l.path(id)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("webhook: no dead letter %q (`thingnet export dead-letters` lists them)", id)
		}
		return fmt.Errorf("webhook: %w", err)
	}
	return nil
}

// writeFile writes b to path durably: a temporary file, fsync, rename.
func writeFile(path string, b []byte) error {
	if err := atomicfile.WriteFile(path, b); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return nil
}
