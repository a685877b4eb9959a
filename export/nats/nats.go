// Package nats is the NATS JetStream sink of the export connectors: one
// message per reading on subject <prefix>.<org>.<device>.<type>, with
// Nats-Msg-Id <gateway>/<log index>/<seq>. Delivery is at least once: a
// batch is published, every publish acknowledged by the stream, and only
// then the checkpoint moved; a batch published again after a crash or a
// failed acknowledgement is dropped by the stream's de-duplication
// window, which makes it effectively once while the window covers the
// time between a publish and its checkpoint.
//
// The checkpoint is kept in a JetStream key-value bucket beside the
// stream (one key per export and gateway), not in a local file: the
// exporter holds no state of its own, the checkpoint lives and is
// replicated with the data it describes, and its revision makes a
// second exporter of the same gateway fail (export.ErrCheckpointMoved)
// instead of interleaving.
package nats

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/thingnet/thingnet/export"
)

// Defaults of Config.
const (
	DefaultStream  = "THINGNET_READINGS"
	DefaultSubject = "thingnet.readings"
	DefaultBucket  = "thingnet_export"
	// DefaultDuplicates is the stream's de-duplication window: longer
	// than an exporter's restart, so what it publishes again after a
	// crash is recognised.
	DefaultDuplicates = 10 * time.Minute
)

// Config configures a Sink.
type Config struct {
	URL        string        // nats://host:port
	Name       string        // the export's name: its checkpoint key
	Stream     string        // created if missing (default DefaultStream)
	Subject    string        // subject prefix (default DefaultSubject)
	Bucket     string        // key-value bucket of checkpoints (default DefaultBucket)
	Duplicates time.Duration // de-dup window of a stream it creates (default DefaultDuplicates)
	AckTimeout time.Duration // how long a publish may wait for its ack (default 10s)
}

// Sink publishes readings to a JetStream stream.
type Sink struct {
	c   Config
	nc  *nats.Conn
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	mu  sync.Mutex
	rev map[string]uint64 // checkpoint key -> revision last read or written
}

var _ export.Sink = (*Sink)(nil)

// Open connects (reconnecting for ever after) and creates the stream and
// the checkpoint bucket if they are missing.
func Open(ctx context.Context, c Config) (*Sink, error) {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 10 * time.Second
	}
	if c.Name == "" {
		return nil, errors.New("nats: Config.Name (the export's name) is required")
	}
	nc, err := nats.Connect(c.URL, nats.Name("thingnet export "+c.Name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true))
	if err != nil {
		return nil, fmt.Errorf("nats: connecting to %s: %w", c.URL, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(c.AckTimeout), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	s := &Sink{c: c, nc: nc, js: js, rev: map[string]uint64{}}
	if _, err := js.Stream(ctx, c.Stream); errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: c.Stream, Subjects: []string{c.Subject + ".>"}, Duplicates: c.Duplicates, Storage: jetstream.FileStorage})
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			nc.Close()
			return nil, fmt.Errorf("nats: creating stream %s: %w", c.Stream, err)
		}
	} else if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: stream %s: %w", c.Stream, err)
	}
	if s.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: c.Bucket, Description: "thingnet export checkpoints", Storage: jetstream.FileStorage}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: checkpoint bucket %s: %w", c.Bucket, err)
	}
	return s, nil
}

// key is the checkpoint key of gateway: a gateway id holds ':', which a
// key may not.
func (s *Sink) key(gateway string) string {
	return s.c.Name + "." + hex.EncodeToString([]byte(gateway))
}

// Checkpoint implements export.Sink.
func (s *Sink) Checkpoint(ctx context.Context, gateway string) (uint64, bool, error) {
	k := s.key(gateway)
	e, err := s.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		s.setRev(k, 0)
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("nats: checkpoint: %w", err)
	}
	n, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("nats: checkpoint %s is %q, not a log index", k, e.Value())
	}
	s.setRev(k, e.Revision())
	return n, true, nil
}

func (s *Sink) setRev(k string, r uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev[k] = r
}

// Subject is the subject a row is published on.
func (s *Sink) Subject(r *export.Row) string {
	return s.c.Subject + "." + token(r.Org) + "." + token(r.Reading.Device) + "." + token(r.Reading.ContentType)
}

// token makes s one subject token: no '.', '*', '>' or white space.
func token(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
}

// Write implements export.Sink: it publishes the rows, waits for every
// acknowledgement, then moves the checkpoint (if its revision is still
// the one read: else export.ErrCheckpointMoved).
func (s *Sink) Write(ctx context.Context, b *export.Batch) error {
	k := s.key(b.Gateway)
	s.mu.Lock()
	rev, known := s.rev[k]
	s.mu.Unlock()
	if !known {
		return fmt.Errorf("%w: read the checkpoint first", export.ErrCheckpointMoved)
	}
	futures := make([]jetstream.PubAckFuture, 0, len(b.Rows))
	for i := range b.Rows {
		r := &b.Rows[i]
		data, err := json.Marshal(r.Message())
		if err != nil {
			return err
		}
		f, err := s.js.PublishMsgAsync(&nats.Msg{Subject: s.Subject(r), Data: data}, jetstream.WithMsgID(r.Key()))
		if err != nil {
			return fmt.Errorf("nats: publishing %s: %w", r.Key(), err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("nats: publishing %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	v := []byte(strconv.FormatUint(b.Next, 10))
	var err error
	var nrev uint64
	if rev == 0 {
		nrev, err = s.kv.Create(ctx, k, v)
	} else {
		nrev, err = s.kv.Update(ctx, k, v, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		s.mu.Lock()
		delete(s.rev, k)
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", export.ErrCheckpointMoved, err)
	}
	if err != nil {
		return fmt.Errorf("nats: moving the checkpoint to %d: %w", b.Next, err)
	}
	s.setRev(k, nrev)
	return nil
}

// Close drains the connection.
func (s *Sink) Close() error {
	s.nc.Close()
	return nil
}
