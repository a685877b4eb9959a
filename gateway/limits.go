package gateway

import (
	"github.com/thingnet/thingnet/gateway/edge"
	"github.com/thingnet/thingnet/ratelimit"
)

// limiterAdapter lets the broker and the CoAP server charge the gateway's
// limiters under the edge contract's keys: source addresses
// (edge.SourceKey) the per-source one, devices (edge.DeviceKey) the
// per-device one.
type limiterAdapter struct{ g *Gateway }

// limiterFor is the limiter that bounds key.
func (g *Gateway) limiterFor(key string) *ratelimit.Limiter {
	if edge.IsSourceKey(key) {
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
