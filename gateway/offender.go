package gateway

// ReportOffender reports a device that misbehaved on another of the
// node's paths (the mesh bans a peer whose messages it keeps refusing):
// the device becomes a candidate for quarantine exactly like one that
// keeps exceeding its limits here. At the next duty round the gateway
// suspends it on the ledger if its organisation granted the gateway
// "manage" on it (its policy); otherwise it is only logged and counted.
func (g *Gateway) ReportOffender(device string, violations int, why string) {
	g.log.Warn("device reported as an offender", "device", device, "violations", violations, "why", why)
	g.stats.offenders.Add(1)
	g.offMu.Lock()
	defer g.offMu.Unlock()
	if len(g.offenders) >= g.cfg.MaxKeys {
		clear(g.offenders)
	}
	g.offenders[device] = offender{violations: violations, reported: g.clock.Now()}
}
