package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
)

// startNodeProcess runs `thingnet node start` and waits for its API.
func startNodeProcess(t *testing.T, bin, home, apiAddr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "node", "start", "--home", home)
	cmd.Env = append(os.Environ(), "THINGNET_GATEWAY_PASSPHRASE=")
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := client.New(apiAddr)
	deadline := time.Now().Add(time.Minute)
	for {
		if st, err := c.Status(context.Background()); err == nil && st.AppHeight >= 1 {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("node did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGatewayCrash sends readings to a real `thingnet node` process over
// its three transports at once — one device publishing at QoS 1 over MQTT,
// one sending confirmable CoAP POSTs several in flight, one POSTing over
// HTTP —, SIGKILLs it mid-stream, restarts it, and checks that every
// acknowledged reading (PUBACK, 2.04, 202) is stored and provable on the
// ledger.
func TestGatewayCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node processes")
	}
	t.Setenv("THINGNET_PASSPHRASE", "")
	bin := testutil.ThingnetBinary(t)
	home := t.TempDir()
	ks := filepath.Join(home, "keys")
	base, err := chain.FreePortBase(1)
	if err != nil {
		t.Fatal(err)
	}
	apiAddr, mqttAddr, coapAddr := fmt.Sprintf("127.0.0.1:%d", base+2), fmt.Sprintf("127.0.0.1:%d", base+3), fmt.Sprintf("127.0.0.1:%d", base+6)
	run := func(args ...string) string { return mustCLI(t, "http://"+apiAddr, ks, args...) }
	for _, k := range []string{"gateway", "admin", "sensor", "coap-sensor", "http-sensor"} {
		run("keys", "new", k)
	}
	idOf := func(name string) string {
		info, err := identity.Keystore{Dir: ks}.Info(name)
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}
	out := run("node", "init", "--home", home, "--moniker", "gw",
		"--p2p-listen", fmt.Sprintf("tcp://127.0.0.1:%d", base), "--rpc-listen", fmt.Sprintf("tcp://127.0.0.1:%d", base+1),
		"--api-listen", apiAddr, "--gateway", "--mqtt-listen", mqttAddr, "--coap-listen", coapAddr, "--fast-blocks",
		"--mesh-listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", base+5), "--mesh-mdns=false")
	val := regexp.MustCompile(`validator pub key: (\S+)`).FindStringSubmatch(out)
	if val == nil {
		t.Fatalf("node init printed no validator key:\n%s", out)
	}
	run("genesis", "create", "--home", home, "--chain-id", "crash-test", "--validator", val[1],
		"--org", "acme:"+idOf("admin"), "--device", idOf("gateway")+":acme:gateway", "--device", idOf("sensor")+":acme:sensor",
		"--device", idOf("coap-sensor")+":acme:sensor", "--device", idOf("http-sensor")+":acme:sensor")

	proc := startNodeProcess(t, bin, home, apiAddr)
	load := func(name string) *identity.Key {
		k, err := identity.Keystore{Dir: ks}.Load(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	sensor := load("sensor")
	coapDev := &crashDevice{key: load("coap-sensor")}
	httpDev := &crashDevice{key: load("http-sensor")}
	cp := dialCrashCoAP(t, coapAddr)
	readingsURL := "http://" + apiAddr + "/v1/readings"
	token, _ := identity.NewCWT(sensor, sensor.ID(), "crash-test", time.Now(), time.Hour)
	mq := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetProtocolVersion(4).
		SetClientID(sensor.ID()).SetUsername(sensor.ID()).SetPassword(identity.EncodeCWTPassword(token)).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second))
	if tok := mq.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	// Publish bursts of 10 readings without waiting between them (the
	// broker pipelines a connection's readings), each burst once the last
	// one is acknowledged, and kill the node once 40 are acknowledged and
	// the next burst's first one too, while the rest of it is in flight:
	// every reading whose PUBACK came, from the last burst too, must survive.
	var acked []uint64
	seq := uint64(0)
	publishBurst := func() (toks []paho.Token, seqs []uint64) {
		for range 10 {
			seq++
			v := float64(seq)
			raw, _ := reading.Sign(sensor, sensor.ID(), reading.Reading{Seq: seq, Time: time.Now(), ContentType: "count", Value: &v})
			toks = append(toks, mq.Publish(gateway.ReadingsTopic(sensor.ID()), 1, false, raw))
			seqs = append(seqs, seq)
		}
		return toks, seqs
	}
	// The CoAP device sends bursts of 5 confirmable POSTs without waiting
	// (stored in the order sent, each answered once fsynced), the HTTP
	// device 4 POSTs one after the other: with the MQTT device's, within the
	// default 10 messages/s of the one source address 127.0.0.1 (burst 20),
	// which CoAP and HTTP charge per request.
	for len(acked) < 40 {
		toks, seqs := publishBurst()
		coapBurst := cp.burst(t, coapDev, 5)
		httpDone := httpDev.postAll(readingsURL, 4)
		for i, tok := range toks {
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %d: %v", seqs[i], tok.Error())
			}
			acked = append(acked, seqs[i])
		}
		if err := coapBurst.wait(t, 10*time.Second); err != nil {
			t.Fatalf("CoAP: %v", err)
		}
		if err := <-httpDone; err != nil {
			t.Fatalf("HTTP: %v", err)
		}
		time.Sleep(time.Second) // within the default 10 readings/s per device (burst 20)
	}
	toks, seqs := publishBurst()
	coapBurst := cp.burst(t, coapDev, 5)
	httpDone := httpDev.postAll(readingsURL, 4)
	toks[0].WaitTimeout(10 * time.Second) // the rest of the burst is still in the gateway
	proc.Process.Kill()
	proc.Wait()
	for i, tok := range toks {
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			acked = append(acked, seqs[i])
		}
	}
	_ = coapBurst.wait(t, 3*time.Second) // the answers that came before the kill
	<-httpDone
	mq.Disconnect(0)

	startNodeProcess(t, bin, home, apiAddr)
	c := client.New(apiAddr).WithIdentity(&client.Identity{Key: load("admin")}) // the organisation's admin reads every device's readings
	// Every entry is fetched, then verified against the ledger's headers,
	// 16 at a time: a verification waits for a block after its anchor.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var entries []*proof.Reading
	for i := uint64(0); ; i++ {
		p, err := c.Reading(ctx, i)
		for err == nil && errors.Is(p.Err(), proof.ErrNotAnchored) {
			time.Sleep(100 * time.Millisecond)
			if ctx.Err() != nil {
				t.Fatalf("entry %d never anchored", i)
			}
			p, err = c.Reading(ctx, i)
		}
		if err != nil {
			break // past the end of the log
		}
		entries = append(entries, p)
	}
	verified := make([]*proof.Verified, len(entries))
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, p := range entries {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			verified[i], errs[i] = c.VerifyReading(ctx, "crash-test", p)
		})
	}
	wg.Wait()
	stored := map[string]map[uint64]bool{}
	for i, v := range verified {
		if errs[i] != nil {
			t.Fatalf("entry %d: %v", i, errs[i])
		}
		if stored[v.Envelope.Device] == nil {
			stored[v.Envelope.Device] = map[uint64]bool{}
		}
		for _, r := range v.Envelope.Readings {
			stored[v.Envelope.Device][r.Seq] = true
		}
	}
	for _, dev := range []struct {
		name  string
		id    string
		acked []uint64
	}{{"MQTT", sensor.ID(), acked}, {"CoAP", coapDev.key.ID(), coapDev.ackedSeqs()}, {"HTTP", httpDev.key.ID(), httpDev.ackedSeqs()}} {
		for _, seq := range dev.acked {
			if !stored[dev.id][seq] {
				t.Errorf("%s: acknowledged reading %d is lost", dev.name, seq)
			}
		}
		t.Logf("%s: %d acknowledged, %d stored and proven after SIGKILL and restart", dev.name, len(dev.acked), len(stored[dev.id]))
		if len(dev.acked) < 16 {
			t.Errorf("%s: only %d readings acknowledged; want at least 16 (4 bursts)", dev.name, len(dev.acked))
		}
	}
}

// crashDevice is a device of TestGatewayCrash sending over CoAP or HTTP:
// its next sequence number and the ones acknowledged.
type crashDevice struct {
	key   *identity.Key
	mu    sync.Mutex
	seq   uint64
	acked []uint64
}

// next signs the device's next reading.
func (d *crashDevice) next() (uint64, []byte) {
	d.mu.Lock()
	d.seq++
	seq := d.seq
	d.mu.Unlock()
	v := float64(seq)
	raw, _ := reading.Sign(d.key, d.key.ID(), reading.Reading{Seq: seq, Time: time.Now(), ContentType: "count", Value: &v})
	return seq, raw
}

func (d *crashDevice) ack(seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.acked = append(d.acked, seq)
}

func (d *crashDevice) ackedSeqs() []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.acked)
}

// postAll POSTs n readings to /v1/readings one after the other, noting each
// answered 202; it reports the first failure (the node killed: nil).
func (d *crashDevice) postAll(url string, n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		c := &http.Client{Timeout: 10 * time.Second}
		for range n {
			seq, raw := d.next()
			resp, err := c.Post(url, "application/cose", bytes.NewReader(raw))
			if err != nil {
				done <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				done <- fmt.Errorf("seq %d answered %s", seq, resp.Status)
				return
			}
			d.ack(seq)
		}
		done <- nil
	}()
	return done
}

// crashCoAP is a CoAP endpoint (one UDP socket) of TestGatewayCrash.
type crashCoAP struct {
	conn *net.UDPConn
	mid  uint16
}

func dialCrashCoAP(t *testing.T, addr string) *crashCoAP {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &crashCoAP{conn: conn}
}

// coapBurst is n confirmable POSTs sent back to back, by message id.
type coapBurst struct {
	c    *crashCoAP
	dev  *crashDevice
	seqs map[uint16]uint64
}

// burst sends n readings of d as confirmable POSTs to /r without waiting.
func (c *crashCoAP) burst(t *testing.T, d *crashDevice, n int) *coapBurst {
	b := &coapBurst{c: c, dev: d, seqs: map[uint16]uint64{}}
	for range n {
		seq, raw := d.next()
		c.mid++
		m := message.Message{Type: message.Confirmable, Code: codes.POST, MessageID: int32(c.mid), Token: []byte{byte(c.mid >> 8), byte(c.mid)},
			Options: message.Options{{ID: message.URIPath, Value: []byte("r")}}, Payload: raw}
		buf := make([]byte, len(raw)+64)
		k, err := coder.DefaultCoder.Encode(m, buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.conn.Write(buf[:k]); err != nil {
			t.Fatal(err)
		}
		b.seqs[c.mid] = seq
	}
	return b
}

// wait collects the burst's answers for up to d, noting each 2.04, and
// reports the first other answer, or a missing one.
func (b *coapBurst) wait(t *testing.T, d time.Duration) error {
	buf := make([]byte, 2048)
	deadline := time.Now().Add(d)
	for len(b.seqs) > 0 {
		_ = b.c.conn.SetReadDeadline(deadline)
		n, err := b.c.conn.Read(buf)
		if err != nil {
			return fmt.Errorf("%d of the burst unanswered: %w", len(b.seqs), err)
		}
		var m message.Message
		if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
			t.Fatalf("CoAP answer % x: %v", buf[:n], err)
		}
		seq, ok := b.seqs[uint16(m.MessageID)]
		if !ok {
			continue // an answer to an earlier burst's retransmission: none are sent
		}
		delete(b.seqs, uint16(m.MessageID))
		if m.Code != codes.Changed {
			return fmt.Errorf("seq %d answered %v", seq, m.Code)
		}
		b.dev.ack(seq)
	}
	return nil
}
