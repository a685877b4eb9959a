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

// ReadingsTopic is the MQTT topic a device publishes its readings to.
func ReadingsTopic(deviceID string) string { return mqtt.ReadingsTopic(deviceID) }
