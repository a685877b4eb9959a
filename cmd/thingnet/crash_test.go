package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

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

// TestGatewayCrash publishes readings at QoS 1 to a real `thingnet node`
// process, SIGKILLs it mid-stream, restarts it, and checks that every
// acknowledged reading is stored and provable on the ledger.
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
	apiAddr, mqttAddr := fmt.Sprintf("127.0.0.1:%d", base+2), fmt.Sprintf("127.0.0.1:%d", base+3)
	run := func(args ...string) string { return mustCLI(t, "http://"+apiAddr, ks, args...) }
	for _, k := range []string{"gateway", "admin", "sensor"} {
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
		"--api-listen", apiAddr, "--gateway", "--mqtt-listen", mqttAddr, "--fast-blocks",
		"--mesh-listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", base+5), "--mesh-mdns=false")
	val := regexp.MustCompile(`validator pub key: (\S+)`).FindStringSubmatch(out)
	if val == nil {
		t.Fatalf("node init printed no validator key:\n%s", out)
	}
	run("genesis", "create", "--home", home, "--chain-id", "crash-test", "--validator", val[1],
		"--org", "acme:"+idOf("admin"), "--device", idOf("gateway")+":acme:gateway", "--device", idOf("sensor")+":acme:sensor")

	proc := startNodeProcess(t, bin, home, apiAddr)
	sensor, err := identity.Keystore{Dir: ks}.Load("sensor", nil)
	if err != nil {
		t.Fatal(err)
	}
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
	for len(acked) < 40 {
		toks, seqs := publishBurst()
		for i, tok := range toks {
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %d: %v", seqs[i], tok.Error())
			}
			acked = append(acked, seqs[i])
		}
		time.Sleep(time.Second) // within the default 10 readings/s per device (burst 20)
	}
	toks, seqs := publishBurst()
	toks[0].WaitTimeout(10 * time.Second) // the rest of the burst is still in the gateway
	proc.Process.Kill()
	proc.Wait()
	for i, tok := range toks {
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			acked = append(acked, seqs[i])
		}
	}
	mq.Disconnect(0)

	startNodeProcess(t, bin, home, apiAddr)
	c := client.New(apiAddr).WithIdentity(&client.Identity{Key: sensor}) // the device reads its own readings
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stored := map[uint64]bool{}
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
		v, err := c.VerifyReading(ctx, "crash-test", p)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		for _, r := range v.Envelope.Readings {
			stored[r.Seq] = true
		}
	}
	for _, seq := range acked {
		if !stored[seq] {
			t.Errorf("acknowledged reading %d is lost", seq)
		}
	}
	t.Logf("%d acknowledged, %d stored and proven after SIGKILL and restart", len(acked), len(stored))
}
