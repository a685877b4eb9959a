package device

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	coapclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/reading"
)

// Receipt says where a gateway stored an envelope, for WasAnchored.
type Receipt struct {
	Gateway   Gateway   // the gateway that acknowledged it
	Transport Transport // how it went
	GatewayID string    // the gateway's did:key (HTTP answers it; empty otherwise)
	Index     int64     // its index in the gateway's data log (HTTP answers it); -1: unknown
	Envelope  []byte    // the signed envelope, as sent
	Seqs      []uint64  // the sequence numbers it carries
	Time      time.Time // the first reading's time
}

// Send signs one reading and sends it. A zero Seq gets the device's next
// sequence number, a zero Time the clock's time; Device is the device's id.
func (d *Device) Send(ctx context.Context, r reading.Reading) (*Receipt, error) {
	return d.SendBatch(ctx, []reading.Reading{r})
}

// SendBatch signs readings as one envelope, under one signature (the
// batch form for more than one, see reading.Sign), and sends it to the
// first gateway that acknowledges it, in order of preference. Readings
// with a zero Seq get consecutive sequence numbers.
func (d *Device) SendBatch(ctx context.Context, rs []reading.Reading) (*Receipt, error) {
	if d.cfg.seal {
		if _, err := d.DataKey(ctx); err != nil {
			return nil, fmt.Errorf("device: the data key to seal to: %w", err)
		}
	}
	raw, rc, err := d.Sign(rs)
	if err != nil {
		return nil, err
	}
	return rc, d.SendEnvelope(ctx, raw, rc)
}

// Sign signs readings into an envelope without sending it, filling in
// sequence numbers and times as SendBatch does; WithSealing, it seals
// their values to the data key DataKey fetched last. rc describes it; its
// gateway fields are set by SendEnvelope.
func (d *Device) Sign(rs []reading.Reading) ([]byte, *Receipt, error) {
	if len(rs) == 0 || len(rs) > reading.MaxBatch {
		return nil, nil, fmt.Errorf("device: %d readings: send 1 to %d at a time", len(rs), reading.MaxBatch)
	}
	rs = append([]reading.Reading(nil), rs...)
	need := 0
	for _, r := range rs {
		if r.Seq == 0 {
			need++
		}
	}
	var next uint64
	if need > 0 {
		var err error
		if next, err = d.seq.take(need); err != nil {
			return nil, nil, err
		}
	}
	now := d.cfg.now()
	for i := range rs {
		if rs[i].Seq == 0 {
			rs[i].Seq = next
			next++
		}
		if rs[i].Time.IsZero() {
			rs[i].Time = now
		}
	}
	if d.cfg.seal {
		if err := d.seal(rs); err != nil {
			return nil, nil, err
		}
	}
	raw, err := reading.Sign(d.key, d.id, rs...)
	if err != nil {
		return nil, nil, err
	}
	rc := &Receipt{Index: -1, Envelope: raw, Time: rs[0].Time.Truncate(time.Millisecond)}
	for _, r := range rs {
		rc.Seqs = append(rc.Seqs, r.Seq)
	}
	return raw, rc, nil
}

// SendEnvelope sends a signed envelope with the configured transport to
// the first gateway that acknowledges it, and fills in rc.
func (d *Device) SendEnvelope(ctx context.Context, raw []byte, rc *Receipt) error {
	return d.each(ctx, "sending a reading", func(i int, gw Gateway) error {
		sctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
		defer cancel()
		t := d.Transport()
		rc.Gateway, rc.Transport = gw, t
		switch t {
		case MQTT:
			return d.sendMQTT(sctx, i, gw, raw)
		case CoAP:
			return d.sendCoAP(sctx, i, gw, raw)
		default:
			return d.sendHTTP(sctx, gw, raw, rc)
		}
	})
}

func (d *Device) sendHTTP(ctx context.Context, gw Gateway, raw []byte, rc *Receipt) error {
	c := d.apiClient(gw)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+"/v1/readings", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/cose")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusAccepted {
		var e client.ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("reading refused: %s: %s", e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("reading refused: HTTP %d: %.200s", resp.StatusCode, body)
	}
	var ok struct {
		Gateway string `json:"gateway"`
		Index   int64  `json:"index"`
	}
	if err := json.Unmarshal(body, &ok); err != nil {
		return fmt.Errorf("the gateway's answer %.200q: %w", body, err)
	}
	rc.GatewayID, rc.Index = ok.Gateway, ok.Index
	return nil
}

// mqttConn is a connected Paho client and when its token expires.
type mqttConn struct {
	c       paho.Client
	expires time.Time
}

func (m *mqttConn) close() { m.c.Disconnect(100) }

func (d *Device) sendMQTT(ctx context.Context, i int, gw Gateway, raw []byte) error {
	c, err := d.mqttClient(ctx, i, gw)
	if err != nil {
		return err
	}
	tok := c.c.Publish("things/"+d.id+"/readings", 1, false, raw)
	if err := waitToken(ctx, tok); err != nil {
		d.dropMQTT(i, c)
		return fmt.Errorf("MQTT publish to %s: %w", gw.MQTT, err)
	}
	return nil
}

func waitToken(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return fmt.Errorf("no acknowledgement: %w", ctx.Err())
	}
}

func (d *Device) mqttClient(ctx context.Context, i int, gw Gateway) (*mqttConn, error) {
	d.mu.Lock()
	c := d.mqtt[i]
	d.mu.Unlock()
	if c != nil && c.c.IsConnectionOpen() && d.cfg.now().Before(c.expires.Add(-time.Minute)) {
		return c, nil
	}
	if c != nil {
		d.dropMQTT(i, c)
	}
	tok, err := d.Token(ctx)
	if err != nil {
		return nil, err
	}
	opts := paho.NewClientOptions().AddBroker("tcp://" + gw.MQTT).SetProtocolVersion(4).
		SetClientID(d.id).SetUsername(d.id).SetPassword(string(tok)).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(d.cfg.timeout)
	pc := paho.NewClient(opts)
	if err := waitToken(ctx, pc.Connect()); err != nil {
		pc.Disconnect(0)
		return nil, fmt.Errorf("MQTT connect to %s: %w", gw.MQTT, err)
	}
	c = &mqttConn{c: pc, expires: d.cfg.now().Add(d.cfg.tokenLife)}
	d.mu.Lock()
	d.mqtt[i] = c
	d.mu.Unlock()
	return c, nil
}

func (d *Device) dropMQTT(i int, c *mqttConn) {
	d.mu.Lock()
	if d.mqtt[i] == c {
		delete(d.mqtt, i)
	}
	d.mu.Unlock()
	c.close()
}

// coapConn is a go-coap client connection.
type coapConn struct{ c *coapclient.Conn }

func (c *coapConn) close() { _ = c.c.Close() }

func (d *Device) sendCoAP(ctx context.Context, i int, gw Gateway, raw []byte) error {
	d.mu.Lock()
	c := d.coap[i]
	d.mu.Unlock()
	if c == nil {
		cc, err := udp.Dial(gw.CoAP, options.WithDialer(&net.Dialer{Timeout: d.cfg.timeout}), options.WithErrors(func(error) {}))
		if err != nil {
			return fmt.Errorf("CoAP to %s: %w", gw.CoAP, err)
		}
		c = &coapConn{cc}
		d.mu.Lock()
		d.coap[i] = c
		d.mu.Unlock()
	}
	drop := func() {
		d.mu.Lock()
		if d.coap[i] == c {
			delete(d.coap, i)
		}
		d.mu.Unlock()
		c.close()
	}
	resp, err := c.c.Post(ctx, "/r", message.AppCoseSign1, bytes.NewReader(raw))
	if err != nil {
		drop()
		return fmt.Errorf("CoAP POST to %s: %w", gw.CoAP, err)
	}
	defer c.c.ReleaseMessage(resp)
	if code := resp.Code(); code != codes.Changed {
		if code != codes.BadRequest {
			drop()
		}
		return fmt.Errorf("CoAP POST to %s: %v", gw.CoAP, code)
	}
	return nil
}
