// Package exporters runs the export connectors a configuration lists
// ([[export]] tables in thingnet.toml, or a file of them for `thingnet
// export`): it opens each sink, starts an export.Exporter per table on
// its own goroutine and reports their status.
package exporters

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/export"
	"github.com/thingnet/thingnet/export/nats"
	"github.com/thingnet/thingnet/export/postgres"
	"github.com/thingnet/thingnet/export/webhook"
	"github.com/thingnet/thingnet/identity"
)

// Kinds of export.
const (
	KindPostgres = "postgres"
	KindNATS     = "nats"
	KindWebhook  = "webhook"
)

// Spec is one [[export]] table (docs/export.md).
type Spec struct {
	Name string `toml:"name"` // unique; names the checkpoint and the metrics
	Kind string `toml:"kind"` // postgres, nats or webhook
	// Source is the API URL of the gateway node to follow; in a node,
	// default the node's own API.
	Source string `toml:"source,omitempty"`
	// Identity is the key file the export reads as (and signs webhooks
	// with); in a node, default the gateway key. Its passphrase comes
	// from $THINGNET_EXPORT_PASSPHRASE. IdentityAs is the id it reads as,
	// if not the key's did:key.
	Identity   string `toml:"identity,omitempty"`
	IdentityAs string `toml:"identity_as,omitempty"`
	// After: "stored" (default) or "anchored".
	After string `toml:"after,omitempty"`
	// From is the first log index to export when there is no checkpoint.
	From  uint64        `toml:"from,omitempty"`
	Batch int           `toml:"batch,omitempty"` // log entries a batch (default 500)
	Poll  time.Duration `toml:"poll,omitempty"`  // longest wait for new entries (default 250ms)
	// StateDir holds a webhook export's checkpoint and dead letters
	// (default <home>/export/<name>).
	StateDir string `toml:"state_dir,omitempty"`

	DSN   string `toml:"dsn,omitempty"`   // postgres
	Table string `toml:"table,omitempty"` // postgres (default thingnet_readings)

	URL        string        `toml:"url,omitempty"`        // nats (nats://...) or webhook (https://...)
	Stream     string        `toml:"stream,omitempty"`     // nats (default THINGNET_READINGS)
	Subject    string        `toml:"subject,omitempty"`    // nats subject prefix (default thingnet.readings)
	Duplicates time.Duration `toml:"duplicates,omitempty"` // nats de-dup window of a new stream (default 10m)

	Timeout     time.Duration `toml:"timeout,omitempty"`      // webhook attempt (default 5s)
	MaxAttempts int           `toml:"max_attempts,omitempty"` // webhook (default 6)
	Backoff     time.Duration `toml:"backoff,omitempty"`      // webhook first retry (default 500ms)
	MaxBackoff  time.Duration `toml:"max_backoff,omitempty"`  // webhook (default 30s)
	Rate        float64       `toml:"rate,omitempty"`         // webhook deliveries a second (default 50)
	Burst       int           `toml:"burst,omitempty"`        // webhook (default 10)
}

var exportName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate names the first bad field of s ([[export]] number i).
func (s Spec) Validate() error {
	if !exportName.MatchString(s.Name) {
		return fmt.Errorf("export.name %q: 1 to 64 letters, digits, - or _", s.Name)
	}
	bad := func(f, why string) error { return fmt.Errorf("export %q: %s %s", s.Name, f, why) }
	switch s.After {
	case "", export.AfterStored, export.AfterAnchored:
	default:
		return bad("after", fmt.Sprintf("%q: use %q or %q", s.After, export.AfterStored, export.AfterAnchored))
	}
	if s.Batch < 0 || s.Batch > client.MaxLogEntries {
		return bad("batch", fmt.Sprintf("%d: use 1 to %d (0: the default)", s.Batch, client.MaxLogEntries))
	}
	switch s.Kind {
	case KindPostgres:
		if s.DSN == "" {
			return bad("dsn", "is required: postgres://user@host:5432/db")
		}
	case KindNATS:
		if s.URL == "" {
			return bad("url", "is required: nats://host:4222")
		}
	case KindWebhook:
		if s.URL == "" {
			return bad("url", "is required: the endpoint's https:// URL")
		}
		if s.Rate < 0 || s.Burst < 0 || s.MaxAttempts < 0 {
			return bad("rate, burst and max_attempts", "may not be negative")
		}
	default:
		return bad("kind", fmt.Sprintf("%q: use %s, %s or %s", s.Kind, KindPostgres, KindNATS, KindWebhook))
	}
	return nil
}

// Validate checks every spec and that names are unique.
func Validate(specs []Spec) error {
	seen := map[string]bool{}
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			return err
		}
		if seen[s.Name] {
			return fmt.Errorf("export.name %q is used twice", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// LoadFile reads the [[export]] tables of a TOML file (a thingnet.toml or
// a file of [[export]] tables only); relative paths in them are taken
// from the file's directory.
func LoadFile(path string) ([]Spec, error) {
	var f struct {
		Export []Spec `toml:"export"`
	}
	if _, err := toml.DecodeFile(path, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Export) == 0 {
		return nil, fmt.Errorf("%s has no [[export]] table (docs/export.md)", path)
	}
	if err := Validate(f.Export); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f.Export, nil
}

// Env is what the exports of a process share.
type Env struct {
	Home   string        // relative paths and default state directories are under it
	Source string        // default Spec.Source (a node's own API)
	Key    *identity.Key // default identity (a node's gateway key)
	Logger *slog.Logger
}

func (env Env) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(env.Home, p)
}

func (env Env) stateDir(s Spec) string {
	if s.StateDir != "" {
		return env.path(s.StateDir)
	}
	return filepath.Join(env.Home, "export", s.Name)
}

// key is the identity s reads as.
func (env Env) key(s Spec) (*identity.Key, error) {
	if s.Identity == "" {
		if env.Key == nil {
			return nil, fmt.Errorf("export %q: identity: name the key file the export reads as (a holder of read grants, or an organisation admin)", s.Name)
		}
		return env.Key, nil
	}
	k, err := identity.LoadKeyFile(env.path(s.Identity), []byte(os.Getenv("THINGNET_EXPORT_PASSPHRASE")))
	if err != nil {
		return nil, fmt.Errorf("export %q: identity: %w", s.Name, err)
	}
	return k, nil
}

// Webhook opens the sink of a webhook spec (for its dead letters).
func Webhook(s Spec, env Env) (*webhook.Sink, error) {
	if s.Kind != KindWebhook {
		return nil, fmt.Errorf("export %q is of kind %s; dead letters are a webhook's", s.Name, s.Kind)
	}
	k, err := env.key(s)
	if err != nil {
		return nil, err
	}
	id := s.IdentityAs
	return webhook.Open(webhook.Config{URL: s.URL, StateDir: env.stateDir(s), Key: k, KeyID: id, Timeout: s.Timeout, MaxAttempts: s.MaxAttempts,
		Backoff: s.Backoff, MaxBackoff: s.MaxBackoff, Rate: s.Rate, Burst: s.Burst})
}

// open opens the sink of s.
func open(ctx context.Context, s Spec, env Env) (export.Sink, error) {
	switch s.Kind {
	case KindPostgres:
		return postgres.Open(ctx, postgres.Config{DSN: s.DSN, Table: s.Table})
	case KindNATS:
		return nats.Open(ctx, nats.Config{URL: s.URL, Name: s.Name, Stream: s.Stream, Subject: s.Subject, Duplicates: s.Duplicates})
	case KindWebhook:
		return Webhook(s, env)
	}
	return nil, fmt.Errorf("export %q: unknown kind %q", s.Name, s.Kind)
}

// Set is the running exports of a process.
type Set struct {
	runs   []*run
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// run is one export: its sink is opened (again and again while it
// fails: the database may not be up yet), then its exporter runs.
type run struct {
	spec Spec
	mu   sync.Mutex
	e    *export.Exporter
	err  string // why the sink is not open
}

// Start starts the exports of specs; it fails only for a configuration
// error (a sink that cannot be reached yet is retried in the background
// and reported in Status).
func Start(specs []Spec, env Env) (*Set, error) {
	if err := Validate(specs); err != nil {
		return nil, err
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	type prepared struct {
		spec Spec
		src  *client.Client
	}
	var ps []prepared
	for _, s := range specs {
		k, err := env.key(s)
		if err != nil {
			return nil, err
		}
		src := s.Source
		if src == "" {
			src = env.Source
		}
		if src == "" {
			return nil, fmt.Errorf("export %q: source: name the gateway node's API URL", s.Name)
		}
		ps = append(ps, prepared{s, client.New(src).WithIdentity(&client.Identity{Key: k, ID: s.IdentityAs})})
	}
	ctx, cancel := context.WithCancel(context.Background())
	set := &Set{cancel: cancel}
	for _, p := range ps {
		r := &run{spec: p.spec}
		set.runs = append(set.runs, r)
		set.wg.Add(1)
		go func() {
			defer set.wg.Done()
			r.run(ctx, p.src, env)
		}()
	}
	return set, nil
}

func (r *run) run(ctx context.Context, src *client.Client, env Env) {
	log := env.Logger.With("export", r.spec.Name, "kind", r.spec.Kind)
	var sink export.Sink
	for n := 1; sink == nil; n++ {
		var err error
		if sink, err = open(ctx, r.spec, env); err != nil {
			r.mu.Lock()
			r.err = err.Error()
			r.mu.Unlock()
			log.Warn("cannot open the export's sink; retrying", "err", err)
			t := time.NewTimer(export.Backoff(n, time.Second, time.Minute))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
	defer sink.Close()
	e, err := export.New(export.Options{Name: r.spec.Name, Kind: r.spec.Kind, Source: src, After: r.spec.After, From: r.spec.From,
		Batch: r.spec.Batch, Poll: r.spec.Poll, Logger: env.Logger}, sink)
	if err != nil { // Validate checked the options
		log.Error("export not started", "err", err)
		return
	}
	r.mu.Lock()
	r.e, r.err = e, ""
	r.mu.Unlock()
	e.Run(ctx)
}

// Status is every export's state, in configuration order.
func (s *Set) Status() []export.Status {
	out := make([]export.Status, 0, len(s.runs))
	for _, r := range s.runs {
		r.mu.Lock()
		e, why := r.e, r.err
		r.mu.Unlock()
		if e == nil {
			after := r.spec.After
			if after == "" {
				after = export.AfterStored
			}
			out = append(out, export.Status{Name: r.spec.Name, Kind: r.spec.Kind, After: after, LastError: why})
			continue
		}
		out = append(out, e.Status())
	}
	return out
}

// Close stops the exports and waits for them; it is idempotent.
func (s *Set) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
	})
	return nil
}
