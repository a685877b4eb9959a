package gateway

import (
	"github.com/thingnet/thingnet/gateway/mqtt"
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

// limiterAdapter lets the broker charge the gateway's limiter.
type limiterAdapter struct{ g *Gateway }

func (a limiterAdapter) AllowConnect(key string) bool {
	ok := a.g.limiter.AllowConnect(key).Allowed
	if !ok {
		a.g.stats.limited.Add(1)
	}
	return ok
}

func (a limiterAdapter) AllowMessage(key string, size int) bool {
	ok := a.g.limiter.AllowMessage(key, size).Allowed
	if !ok {
		a.g.stats.limited.Add(1)
	}
	return ok
}
