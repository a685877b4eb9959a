package gateway

import "github.com/thingnet/thingnet/gateway/coap"

// CoAPConfig configures the gateway's CoAP (UDP) server.
type CoAPConfig struct {
	Listen string // host:port; port 0 picks one
	// MaxInFlight bounds the requests handled at once, over all clients
	// (coap.Config.MaxInFlight); default coap.DefaultMaxInFlight.
	MaxInFlight int
}

// StartCoAP starts a CoAP server that takes signed readings (POST /r) into
// this gateway; readings authenticate themselves by their signatures.
func (g *Gateway) StartCoAP(c CoAPConfig) (*coap.Server, error) {
	return coap.Start(coap.Config{
		Listen: c.Listen, MaxPayload: g.cfg.Limits.MaxPacket, MaxInFlight: c.MaxInFlight,
		Logger: g.log.With("transport", "coap"),
		Ingest: g, Limits: limiterAdapter{g},
	})
}
