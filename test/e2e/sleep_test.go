package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/mesh/message"
)

// wakeCounter counts the wake-ups a sleeping device sees on its wake
// channel.
type wakeCounter struct {
	n      atomic.Int64
	closed atomic.Bool
}

func (w *wakeCounter) run(ch <-chan uint64) {
	for range ch {
		w.n.Add(1)
	}
	w.closed.Store(true)
}

// settle waits until the count reaches want (or timeout), then a quiet
// period more, and returns the count: a wake-up too many shows.
func (w *wakeCounter) settle(want int64, timeout, quiet time.Duration) int64 {
	deadline := time.Now().Add(timeout)
	for w.n.Load() < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(quiet)
	return w.n.Load()
}

// attackerHTTP is an HTTP client whose connections come from the
// harness's second address.
func (n *Net) attackerHTTP() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(n.AttackerIP)}}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16}}
}

// TestDenialOfSleep: lamp sleeps with its wake channel open at the gateway
// process (the device SDK's mesh node in the test process, as
// device.Agent keeps it), with a daily downlink budget of 7 (its ledger
// label); the gateway's sender quota is the default 5. switch and switch-2
// may message lamp. 1,200 wake attempts by unregistered keys and by a
// registered device with no grant (over the mesh and HTTP, from another
// address), an attempt to take over lamp's wake channel and 100 replays of
// switch's wake message wake lamp 0 times; switch's 20 wake messages wake
// it exactly 5 times (its quota), switch-2's 20 exactly 2 (the budget's
// rest). Every deposit acknowledged is pulled by lamp at the end; nothing
// else is.
func TestDenialOfSleep(t *testing.T) {
	long(t)
	start := time.Now()
	n := StartNet(t, Manifest{Name: "sleep", Validators: 4, Gateways: []int{0}, Orgs: []string{"acme"}, Mesh: true,
		Devices: []Device{{"lamp", "acme", "lamp"}, {"switch", "acme", "switch"}, {"switch-2", "acme", "switch"}, {"intruder", "acme", "sensor"}}})
	r := result{Scenario: "denial-of-sleep", Invariant: "wakes = quota/budget; 0 by attackers; 0 lost"}
	defer func() { report(t, start, r) }()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	const budget, quota = 7, 5 // lamp's label; the gateway's default sender_wakes_per_day
	lampKey, sw, sw2, intruder := n.Key("lamp"), n.Key("switch"), n.Key("switch-2"), n.Key("intruder")
	gw := n.Nodes[0].GatewayID
	n.keepMailbox("acme", lampKey.ID(), 0, budget)
	n.grantMessage("acme", sw.ID(), lampKey.ID())
	n.grantMessage("acme", sw2.ID(), lampKey.ID())

	// lamp: asleep, its wake channel open; what it pulls at the end.
	var pulledMu sync.Mutex
	pulled := map[[32]byte]int{}
	lamp := n.meshDevice(ctx, 0, lampKey, "", func(c *mesh.Config) {
		c.Handler = func(_ context.Context, d *mesh.Delivery) error {
			pulledMu.Lock()
			pulled[d.Hash]++
			pulledMu.Unlock()
			return nil
		}
	})
	ch, err := lamp.Sleep(ctx, gw)
	if err != nil {
		t.Fatalf("lamp opens its wake channel: %v", err)
	}
	wakes := &wakeCounter{}
	go wakes.run(ch)

	auth, err := mesh.NewAPIAuthority(ctx, n.Nodes[0].Client)
	if err != nil {
		t.Fatal(err)
	}
	compose := func(k *identity.Key, seq uint64) []byte {
		env, err := message.Compose(k, k.ID(), seq, message.Outgoing{To: lampKey.ID(), Body: []byte(fmt.Sprint("wake up ", seq)), Wake: true}, auth)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	acked := map[[32]byte]bool{}
	switchNode := n.meshDevice(ctx, 0, sw, "", nil)
	swSeq := message.TimeSeq(time.Now())
	fromSwitch := func() []byte {
		swSeq++
		env := compose(sw, swSeq)
		res, err := switchNode.Deposit(ctx, gw, env)
		if err != nil || res.Status != message.StatusDelivered {
			t.Fatalf("switch's wake message refused: %v %v", err, res)
		}
		acked[sha256.Sum256(env)] = true
		return env
	}

	// Control: switch's first wake message wakes lamp (so its channel is
	// registered at the gateway before the attack).
	first := fromSwitch()
	if got := wakes.settle(1, time.Minute, 0); got != 1 {
		t.Fatalf("switch's first wake message: lamp saw %d wake-ups, want 1", got)
	}

	// The attack: 1,200 wake attempts.
	var tried, delivered atomic.Int64
	count := func(res *message.Result, err error) {
		tried.Add(1)
		if err == nil && res.Status == message.StatusDelivered {
			delivered.Add(1)
			t.Errorf("ACCEPTED: an attacker's wake message (%x)", res.Hash)
		}
	}
	before := n.meshInfo(ctx, 0).Stats
	atk := message.MailboxClient{Base: "http://" + n.Nodes[0].API, HTTP: n.attackerHTTP()}
	var wg sync.WaitGroup
	httpKeys := make(chan *identity.Key, 600)
	for i := 0; i < 400; i++ { // 400 unregistered keys, one message each
		k, _ := identity.GenerateKey(identity.Ed25519)
		httpKeys <- k
	}
	for i := 0; i < 200; i++ { // the registered device with no grant
		httpKeys <- intruder
	}
	close(httpKeys)
	var intruderSeq atomic.Uint64
	intruderSeq.Store(message.TimeSeq(time.Now()))
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range httpKeys {
				dr, err := atk.Deposit(ctx, compose(k, intruderSeq.Add(1)))
				var res *message.Result
				if dr != nil {
					res = &dr.Result
				}
				count(res, err)
			}
		}()
	}
	// Over the mesh: 5 peers (4 unregistered keys, the intruder), 100 each:
	// each is banned at its 100th refused message.
	for i := 0; i < 5; i++ {
		k := intruder
		if i < 4 {
			k, _ = identity.GenerateKey(identity.Ed25519)
		}
		m := n.meshDevice(ctx, 0, k, "", nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				count(m.Deposit(ctx, gw, compose(k, intruderSeq.Add(1))))
			}
		}()
	}
	// An unregistered key takes over lamp's wake channel.
	fakeKey, _ := identity.GenerateKey(identity.Ed25519)
	fake := n.meshDevice(ctx, 0, fakeKey, lampKey.ID(), nil)
	fch, err := fake.Sleep(ctx, gw)
	tried.Add(1)
	if err == nil {
		select {
		case _, open := <-fch:
			if open {
				t.Errorf("ACCEPTED: an unregistered key was handed lamp's wake-ups")
			}
		case <-time.After(15 * time.Second):
			t.Errorf("ACCEPTED: the gateway kept an unregistered key's wake channel for lamp")
		}
	}
	wg.Wait()
	if got := wakes.settle(1, 0, 3*time.Second); got != 1 {
		t.Errorf("lamp saw %d wake-ups after the attack; want 1 (the control)", got)
	}
	// Replays of switch's wake message (its quota still has 4 left).
	for i := 0; i < 100; i++ {
		dr, err := atk.Deposit(ctx, first)
		var res *message.Result
		if dr != nil {
			res = &dr.Result
		}
		count(res, err)
	}
	if got := wakes.settle(1, 0, 3*time.Second); got != 1 {
		t.Errorf("lamp saw %d wake-ups after 100 replays; want 1", got)
	}
	attack := n.meshInfo(ctx, 0).Stats

	// Over budget: switch 19 more (quota 5), switch-2 20 (the budget's rest).
	for i := 0; i < 19; i++ {
		fromSwitch()
	}
	if got := wakes.settle(quota, time.Minute, 3*time.Second); got != quota {
		t.Errorf("switch's 20 wake messages: lamp saw %d wake-ups; want %d (its quota)", got, quota)
	}
	mc := message.MailboxClient{Base: "http://" + n.Nodes[0].API}
	seq2 := message.TimeSeq(time.Now())
	for i := 0; i < 20; i++ {
		seq2++
		env := compose(sw2, seq2)
		dr, err := mc.Deposit(ctx, env)
		if err != nil || dr.Status != message.StatusDelivered {
			t.Fatalf("switch-2's wake message refused: %v %v", err, dr)
		}
		acked[sha256.Sum256(env)] = true
	}
	if got := wakes.settle(budget, time.Minute, 3*time.Second); got != budget {
		t.Errorf("switch-2's 20 wake messages: lamp saw %d wake-ups in all; want %d (its budget)", got, budget)
	}
	end := n.meshInfo(ctx, 0).Stats

	// lamp wakes on its schedule and pulls: everything acknowledged, once.
	got, err := lamp.Pull(ctx, gw)
	if err != nil {
		t.Fatalf("lamp's pull: %v", err)
	}
	pulledMu.Lock()
	defer pulledMu.Unlock()
	lost := 0
	for h := range acked {
		if pulled[h] != 1 {
			lost++
			t.Errorf("acknowledged message %x pulled %d times", h[:6], pulled[h])
		}
	}
	if got != len(acked) || len(pulled) != len(acked) {
		t.Errorf("lamp pulled %d messages (%d distinct); %d were acknowledged", got, len(pulled), len(acked))
	}
	denied := func(s message.Stats, reason string) uint64 { return s.WakesDenied[reason] }
	t.Logf("attack: %d wake attempts, %d accepted; gateway: wakes %d, denied unauthorized +%d, bans +%d, refused %v",
		tried.Load(), delivered.Load(), end.Wakes, denied(attack, "unauthorized")-denied(before, "unauthorized"), attack.Bans-before.Bans, attack.Refused)
	t.Logf("authorized: switch 20 and switch-2 20 wake messages, lamp woken %d times (gateway: %d; denied sender_quota %d, device_budget %d); %d pulled, %d lost",
		wakes.n.Load(), end.Wakes, denied(end, "sender_quota"), denied(end, "device_budget"), got, lost)
	if end.Wakes != budget {
		t.Errorf("the gateway counts %d wake-ups sent; want %d", end.Wakes, budget)
	}
	if q, b := denied(end, "sender_quota"), denied(end, "device_budget"); q != 20-quota || b != 20-(budget-quota) {
		t.Errorf("wake-ups denied: sender_quota %d (want %d), device_budget %d (want %d)", q, 20-quota, b, 20-(budget-quota))
	}
	if attack.Bans-before.Bans < 5 {
		t.Errorf("%d mesh peers banned; want the 5 that sent 100 refused messages each", attack.Bans-before.Bans)
	}
	r.Load = fmt.Sprintf("40 authorized wake msgs; woken %d", wakes.n.Load())
	r.Faults = "wake floods, replays, hijack"
	r.Inputs = fmt.Sprintf("%d wake attempts (mesh, HTTP)", tried.Load())
}
