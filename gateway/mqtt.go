package gateway

import (
	"strings"

	"github.com/thingnet/thingnet/gateway/coap"
	"github.com/thingnet/thingnet/gateway/mqtt"
	"github.com/thingnet/thingnet/ratelimit"
)

// MQTTConfig configures the gateway's embedded MQTT broker.
type MQTTConfig struct {
	Listen     string // host:port; port 0 picks one
	MaxClients int
}

// StartMQTT starts an MQTT broker whose devices authenticate with CWTs
// against the ledger, publish readings into this gateway, and follow the
// readings their grants let them read.
func (g *Gateway) StartMQTT(c MQTTConfig) (*mqtt.Broker, error) {
	return mqtt.Start(mqtt.Config{
		Listen: c.Listen, MaxClients: c.MaxClients, MaxPacket: g.cfg.Limits.MaxPacket,
		Logger: g.log.With("transport", "mqtt"),
		Auth:   g, Ingest: g, ACL: g, Limits: limiterAdapter{g},
	})
}

// limiterAdapter lets the broker and the CoAP server charge the gateway's
// limiters: source addresses ("addr:" keys) the per-source one, devices the
// per-device one.
type limiterAdapter struct{ g *Gateway }

// limiterFor is the limiter that bounds key.
func (g *Gateway) limiterFor(key string) *ratelimit.Limiter {
	if strings.HasPrefix(key, "addr:") {
		return g.sources
	}
	return g.limiter
}

func (a limiterAdapter) AllowConnect(key string) bool {
	ok := a.g.limiterFor(key).AllowConnect(key).Allowed
	if !ok {
		a.g.stats.limited.Add(1)
	}
	return ok
}

func (a limiterAdapter) AllowMessage(key string, size int) bool {
	ok := a.g.limiterFor(key).AllowMessage(key, size).Allowed
	if !ok {
		a.g.stats.limited.Add(1)
	}
	return ok
}

// CoAPConfig configures the gateway's CoAP (UDP) server.
type CoAPConfig struct {
	Listen string // host:port; port 0 picks one
}

// StartCoAP starts a CoAP server that takes signed readings (POST /r) into
// this gateway; readings authenticate themselves by their signatures.
func (g *Gateway) StartCoAP(c CoAPConfig) (*coap.Server, error) {
	return coap.Start(coap.Config{
		Listen: c.Listen, MaxPayload: g.cfg.Limits.MaxPacket,
		Logger: g.log.With("transport", "coap"),
		Ingest: g, Limits: limiterAdapter{g},
	})
}
