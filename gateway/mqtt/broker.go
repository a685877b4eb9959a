package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingnet/thingnet/gateway/edge"
)

// Bounds that are not worth a Config field.
const (
	closeTimeout     = 5 * time.Second // Close gives up waiting for connections after this
	sessionExpiry    = 3600            // seconds a disconnected persistent session is kept
	maxInflight      = 128             // QoS 1/2 messages queued per subscriber
	maxWritesPending = 512             // packets queued for writing per client
	receiveMaximum   = 64              // readings a connection may have in its pipeline (pipeline.go); QoS 2 PUBLISHes awaiting PUBREL
	sysTopicInterval = 10              // seconds between $SYS updates (only the ACL lets anyone read them)
)

// Broker is a running MQTT broker.
type Broker struct {
	server *mochi.Server
	hook   *hook
	ln     *listener
	log    *slog.Logger
	stats  *counters
	cancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// Start listens on c.Listen and serves MQTT until Close.
func Start(c Config) (*Broker, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	nl, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("mqtt: listen on %s: %w", c.Listen, err)
	}
	if c.TLS != nil {
		nl = tls.NewListener(nl, c.TLS)
	}
	log := c.Logger.With("component", "mqtt")
	stats := newCounters()
	ctx, cancel := context.WithCancel(context.Background())

	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(c.MaxClients)
	caps.MaximumPacketSize = uint32(c.MaxPacket)
	caps.MaximumSessionExpiryInterval = sessionExpiry
	caps.MaximumInflight = maxInflight
	caps.MaximumClientWritesPending = maxWritesPending
	caps.ReceiveMaximum = receiveMaximum
	caps.TopicAliasMaximum = 0 // not offered in the CONNACK, so a client must not use them
	server := mochi.New(&mochi.Options{
		Capabilities:           caps,
		Logger:                 log,
		SysTopicResendInterval: sysTopicInterval,
	})
	h := &hook{ctx: ctx, cfg: c, log: log, stats: stats, server: server,
		inline: server.NewClient(nil, "local", "thingnet-relay", true)}
	h.pipe, _ = c.Ingest.(edge.Pipeliner)
	// Open connections are capped above MaxClients so that a CONNECT beyond
	// it is still read and answered with "server busy" by mochi; beyond the
	// cap a connection is closed at once.
	ln := newListener(nl, c.MaxClients+c.MaxClients/4+16, c.ConnectTimeout, log, stats)
	b := &Broker{server: server, hook: h, ln: ln, log: log, stats: stats, cancel: cancel}
	ln.disconnect = b.disconnectAll
	if err := server.AddHook(h, nil); err != nil {
		b.abort()
		return nil, fmt.Errorf("mqtt: add hook: %w", err)
	}
	if err := server.AddListener(ln); err != nil {
		b.abort()
		return nil, fmt.Errorf("mqtt: add listener: %w", err)
	}
	if err := server.Serve(); err != nil {
		b.abort()
		return nil, fmt.Errorf("mqtt: serve: %w", err)
	}
	log.Info("mqtt: broker listening", "addr", ln.Address(), "tls", c.TLS != nil)
	return b, nil
}

// abort undoes a Start that failed before serving.
func (b *Broker) abort() {
	b.cancel()
	_ = b.ln.ln.Close()
}

// Addr returns the address the broker listens on.
func (b *Broker) Addr() string { return b.ln.Address() }

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats { return b.stats.snapshot() }

// Disconnect closes the connection of deviceID, if it is connected (v5
// clients are told "administrative action"), for instance once the ledger
// has suspended or revoked it. It reports whether a client was connected.
func (b *Broker) Disconnect(deviceID string) bool {
	cl, ok := b.server.Clients.Get(deviceID)
	if !ok || cl.Closed() {
		return false
	}
	if isV5(cl) {
		_ = b.server.DisconnectClient(cl, packets.ErrAdministrativeAction)
	}
	cl.Stop(packets.ErrAdministrativeAction)
	return true
}

// disconnectAll ends every session: a v5 client is told the server is
// shutting down; a v3.1.1 one, which has no DISCONNECT from a server, is
// closed.
func (b *Broker) disconnectAll() {
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Closed() {
			continue
		}
		if isV5(cl) {
			_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
		cl.Stop(packets.ErrServerShuttingDown)
	}
}

// Close stops the broker: it stops accepting, cancels the Authenticate and
// Ingest calls in progress (their readings are not acknowledged), tells v5
// clients the server is shutting down and closes every connection. It waits
// at most 5 s for the connections' goroutines, and is idempotent.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = b.server.Close() // always nil
			b.hook.wg.Wait()     // the pipelines end with their connections
		}()
		select {
		case <-done:
			b.log.Info("mqtt: broker stopped")
		case <-time.After(closeTimeout):
			b.closeErr = fmt.Errorf("mqtt: close: connections still busy after %s (an Authenticator or Ingestor that ignores its context?)", closeTimeout)
		}
	})
	return b.closeErr
}
