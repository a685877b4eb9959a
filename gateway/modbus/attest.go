package modbus

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/reading"
)

// Ingest stores one signed reading envelope (gateway.Gateway.IngestIndex
// in a node).
type Ingest func(ctx context.Context, deviceID string, raw []byte) error

// Attest returns a sink that records each successful sample as one
// envelope of gateway-attested readings: the sensor's ledger id as the
// readings' device, signed by the gateway key gw (reading.SignAttested),
// which the gateway's own ingestion then checks against the ledger (the
// sensor must be registered with attested_by this gateway) like any
// reading. A failed sample records nothing: it is logged (and counted in
// the Poller's Status). Sequence numbers are the sample's time in
// microseconds plus the register's index, so they grow across restarts
// of the gateway without any state.
func Attest(ctx context.Context, gw *identity.Key, cfg *Config, ingest Ingest, log *slog.Logger) func(Sample) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	devices := map[string]string{}
	for _, s := range cfg.Sensors {
		devices[s.Name] = s.Device
	}
	return func(smp Sample) {
		if smp.Err != nil {
			return
		}
		dev := devices[smp.Sensor]
		if dev == "" {
			log.Warn("modbus: sensor has no device id on the ledger; its values are not recorded", "sensor", smp.Sensor)
			return
		}
		base := uint64(smp.Time.UnixMicro())
		rs := make([]reading.Reading, len(smp.Values))
		for i, v := range smp.Values {
			val := v.Value
			rs[i] = reading.Reading{ContentType: v.Reading, Value: &val, Seq: base + uint64(i), Time: smp.Time}
		}
		raw, err := reading.SignAttested(gw, gw.ID(), dev, rs...)
		if err == nil {
			err = ingest(ctx, dev, raw)
		}
		if err != nil {
			log.Warn("modbus: recording a sensor's readings", "sensor", smp.Sensor, "device", dev, "err", fmt.Errorf("%w", err))
		}
	}
}
