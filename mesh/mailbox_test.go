package mesh

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
	"github.com/thingnet/thingnet/record"
)

// mailboxSetup: gateway G keeps the mailbox of sleeping device B; A may
// message B; C is registered but holds no grant.
type mailboxSetup struct {
	l            *testLedger
	gKey, aKey   *identity.Key
	bKey, cKey   *identity.Key
	g            *Node
	gDir         string
	box          *inbox
	startGateway func() *Node
	startB       func() *Node
}

func newMailboxSetup(t *testing.T, cfg MailboxConfig) *mailboxSetup {
	l := newTestLedger(t, "acme")
	s := &mailboxSetup{l: l, box: newInbox(), gDir: t.TempDir()}
	s.gKey = l.device("acme", "gateway", identity.Ed25519)
	s.aKey = l.device("acme", "sensor", identity.Ed25519)
	s.bKey = l.device("acme", "valve", identity.Ed25519)
	s.cKey = l.device("acme", "sensor", identity.Ed25519)
	l.grant("acme", "device:"+s.aKey.ID(), message.KindMessage, "device:"+s.bKey.ID())
	l.labels("acme", s.bKey.ID(), map[string]string{message.LabelMailboxes: s.gKey.ID(), message.LabelDownlinks: "3"})
	var listen []string
	s.startGateway = func() *Node {
		cfg.Dir = filepath.Join(s.gDir, "mailbox")
		g := startNode(t, l, s.gKey, func(c *Config) {
			c.Relay = true
			c.Mailboxes = &cfg
			if listen != nil {
				c.Listen = listen
			}
		})
		listen = nil
		for _, a := range g.Host().Addrs() {
			listen = append(listen, a.String())
		}
		s.g = g
		return g
	}
	s.startB = func() *Node {
		return startNode(t, l, s.bKey, func(c *Config) { c.Handler = s.box.handler })
	}
	s.startGateway()
	return s
}

func TestMailboxStoreAndPullAcrossRestart(t *testing.T) {
	s := newMailboxSetup(t, MailboxConfig{NoSync: false})
	ctx := ctxT(t)
	a := startNode(t, s.l, s.aKey, nil)
	connect(t, a, s.g)
	var sent []string
	for i := 0; i < 5; i++ {
		body := fmt.Sprintf("set point %d", i)
		env, err := a.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte(body), Seal: true})
		if err != nil {
			t.Fatal(err)
		}
		res, err := a.Deposit(ctx, s.gKey.ID(), env)
		if err != nil || res.Err() != nil {
			t.Fatalf("deposit: %v %v", err, res)
		}
		sent = append(sent, body)
		// The same message again is a replay, for the mailbox too.
		if res, err := a.Deposit(ctx, s.gKey.ID(), env); err != nil || res.Status != message.StatusReplay {
			t.Fatalf("replayed deposit: %v %v", err, res)
		}
	}
	// C holds no grant: refused, not stored.
	c := startNode(t, s.l, s.cKey, nil)
	connect(t, c, s.g)
	env, _ := c.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("spam")})
	if res, err := c.Deposit(ctx, s.gKey.ID(), env); err != nil || res.Status != message.StatusNotGranted {
		t.Fatalf("ungranted deposit: %v %v", err, res)
	}
	if st := s.g.Stats(); st.MailboxDepth != 5 {
		t.Fatalf("depth %d", st.MailboxDepth)
	}

	// The gateway restarts: the messages are still there.
	s.g.Close()
	s.startGateway()
	b := s.startB()
	connect(t, b, s.g)
	n, err := b.Pull(ctx, s.gKey.ID())
	if err != nil || n != 5 {
		t.Fatalf("pulled %d: %v", n, err)
	}
	for i, want := range sent {
		d := s.box.next(t, time.Second)
		if string(d.Plaintext) != want || d.Via != "mailbox" {
			t.Fatalf("message %d: %q via %s", i, d.Plaintext, d.Via)
		}
	}
	if st := s.g.Stats(); st.MailboxDepth != 0 || st.MailboxPulled != 5 {
		t.Fatalf("after pull: %+v", st)
	}
	if n, err := b.Pull(ctx, s.gKey.ID()); err != nil || n != 0 {
		t.Fatalf("second pull: %d %v", n, err)
	}
	// Only B may pull B's mailbox.
	if _, err := s.l.auth.Device(s.cKey.ID()); err != nil {
		t.Fatal(err)
	}
	cn := c.id
	c.id = s.bKey.ID() // C claims to be B
	_, err = c.Pull(ctx, s.gKey.ID())
	c.id = cn
	if err == nil {
		t.Fatal("C pulled B's mailbox")
	}
}

func TestMailboxBounded(t *testing.T) {
	s := newMailboxSetup(t, MailboxConfig{MaxMessages: 10, NoSync: true})
	ctx := ctxT(t)
	a := startNode(t, s.l, s.aKey, nil)
	connect(t, a, s.g)
	for i := 0; i < 25; i++ {
		env, _ := a.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte(fmt.Sprint(i))})
		if res, err := a.Deposit(ctx, s.gKey.ID(), env); err != nil || res.Err() != nil {
			t.Fatalf("deposit %d: %v %v", i, err, res)
		}
	}
	st := s.g.Stats()
	if st.MailboxDepth != 10 || st.MailboxDropped != 15 {
		t.Fatalf("depth %d dropped %d", st.MailboxDepth, st.MailboxDropped)
	}
	b := s.startB()
	connect(t, b, s.g)
	if n, err := b.Pull(ctx, s.gKey.ID()); err != nil || n != 10 {
		t.Fatalf("pulled %d: %v", n, err)
	}
	if d := s.box.next(t, time.Second); string(d.Plaintext) != "15" {
		t.Fatalf("oldest kept is %q, want 15", d.Plaintext)
	}
}

// TestDenialOfSleep: 1,000 wake attempts from unauthenticated and
// unauthorized senders cause no wake-up; an authorized sender wakes the
// device within its budget only; every legitimate message arrives at the
// next pull.
func TestDenialOfSleep(t *testing.T) {
	s := newMailboxSetup(t, MailboxConfig{NoSync: true, SenderWakesPerDay: 2})
	ctx := ctxT(t)
	b := s.startB()
	connect(t, b, s.g)
	wakes, err := b.Sleep(ctx, s.gKey.ID())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the gateway registers the wake channel

	// Attackers: an unregistered key and a registered device without a
	// grant, 500 wake attempts each, in batches as a flood would send.
	stranger := startNode(t, s.l, mustKey(t, identity.Ed25519), func(c *Config) { c.MaxRefusals = 1 << 30 })
	c := startNode(t, s.l, s.cKey, nil)
	s.g.gater.max = 1 << 30 // count every attempt instead of banning the attackers
	for _, att := range []*Node{stranger, c} {
		connect(t, att, s.g)
		for i := 0; i < 500; i++ {
			env, _ := att.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("wake up"), Wake: true})
			res, err := att.Deposit(ctx, s.gKey.ID(), env)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status == message.StatusDelivered {
				t.Fatal("an unauthorized message was accepted")
			}
		}
	}
	select {
	case n := <-wakes:
		t.Fatalf("woken by an attacker (%d waiting)", n)
	case <-time.After(200 * time.Millisecond):
	}
	if st := s.g.Stats(); st.Wakes != 0 || st.WakesDenied["unauthorized"] != 1000 {
		t.Fatalf("wakes %d, denied %v", st.Wakes, st.WakesDenied)
	}

	// The authorized sender A: its quota is 2 wakes a day; B's budget is 3.
	a := startNode(t, s.l, s.aKey, nil)
	connect(t, a, s.g)
	for i := 0; i < 4; i++ {
		env, _ := a.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte(fmt.Sprint("urgent ", i)), Wake: true, Seal: true})
		if res, err := a.Deposit(ctx, s.gKey.ID(), env); err != nil || res.Err() != nil {
			t.Fatalf("deposit: %v %v", err, res)
		}
	}
	got := 0
	timeout := time.After(2 * time.Second)
loop:
	for {
		select {
		case _, ok := <-wakes:
			if !ok {
				break loop
			}
			got++
		case <-timeout:
			break loop
		}
	}
	if got != 2 {
		t.Fatalf("%d wake-ups, want 2 (the sender's quota)", got)
	}
	if st := s.g.Stats(); st.WakesDenied["sender_quota"] != 2 {
		t.Fatalf("denied %v", st.WakesDenied)
	}
	if n, err := b.Pull(ctx, s.gKey.ID()); err != nil || n != 4 {
		t.Fatalf("pulled %d: %v", n, err)
	}
}

// TestWakeBudgetByClass: a device class's daily budget applies unless the
// device's own ledger label sets one.
func TestWakeBudgetByClass(t *testing.T) {
	s := newMailboxSetup(t, MailboxConfig{NoSync: true, SenderWakesPerDay: 100, DownlinksPerClass: map[string]int{"valve": 1}})
	ctx := ctxT(t)
	s.l.must(s.l.Do(s.l.admins["acme"], &record.DeviceUpdate{Device: s.bKey.ID(), RemoveLabels: []string{message.LabelDownlinks}}))
	b := s.startB()
	connect(t, b, s.g)
	wakes, err := b.Sleep(ctx, s.gKey.ID())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	a := startNode(t, s.l, s.aKey, nil)
	connect(t, a, s.g)
	wakeUps := func(tries int) int {
		for range tries {
			env, _ := a.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("x"), Wake: true})
			if res, err := a.Deposit(ctx, s.gKey.ID(), env); err != nil || res.Err() != nil {
				t.Fatalf("deposit: %v %v", err, res)
			}
		}
		got := 0
		for {
			select {
			case <-wakes:
				got++
			case <-time.After(500 * time.Millisecond):
				return got
			}
		}
	}
	if got := wakeUps(4); got != 1 {
		t.Fatalf("class budget 1: %d wake-ups", got)
	}
	s.l.labels("acme", s.bKey.ID(), map[string]string{message.LabelDownlinks: "3"})
	if got := wakeUps(4); got != 2 {
		t.Fatalf("device label 3, 1 used: %d more wake-ups, want 2", got)
	}
	if st := s.g.Stats(); st.WakesDenied["device_budget"] != 5 {
		t.Fatalf("denied %v", st.WakesDenied)
	}
}

// TestDeviceRestartKeepsReplayState: a device that restarts with its
// replay state on disk still refuses a message it took before, even when
// a gateway hands it over again.
func TestDeviceRestartKeepsReplayState(t *testing.T) {
	s := newMailboxSetup(t, MailboxConfig{NoSync: true})
	ctx := ctxT(t)
	a := startNode(t, s.l, s.aKey, nil)
	connect(t, a, s.g)
	env, err := a.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("once"), Seal: true})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := a.Deposit(ctx, s.gKey.ID(), env); err != nil || res.Err() != nil {
		t.Fatalf("deposit: %v %v", err, res)
	}
	state := filepath.Join(t.TempDir(), "replay.json")
	start := func() *Node {
		ws, err := message.OpenFileWindowStore(state)
		if err != nil {
			t.Fatal(err)
		}
		return startNode(t, s.l, s.bKey, func(c *Config) { c.Handler = s.box.handler; c.Replay = ws })
	}
	b := start()
	connect(t, b, s.g)
	if n, err := b.Pull(ctx, s.gKey.ID()); err != nil || n != 1 {
		t.Fatalf("pulled %d: %v", n, err)
	}
	b.Close()
	b = start()
	if res := b.Accept(ctx, [][]byte{env})[0]; res.Status != message.StatusReplay {
		t.Fatalf("after restart, the same message: %v", res.Status)
	}
}

// TestMailboxSenderShare: a sender, even a granted one, holds at most half
// of a device's mailbox while another sender's messages wait there: beyond
// it its messages are refused (rate_limited) instead of pushing the
// others' out; the counts survive a gateway restart and shrink when the
// device reads its mail.
func TestMailboxSenderShare(t *testing.T) {
	s := newMailboxSetup(t, MailboxConfig{MaxMessages: 10, NoSync: true})
	s.l.grant("acme", "device:"+s.cKey.ID(), message.KindMessage, "device:"+s.bKey.ID())
	ctx := ctxT(t)
	a := startNode(t, s.l, s.aKey, nil)
	c := startNode(t, s.l, s.cKey, nil)
	connect(t, a, s.g)
	connect(t, c, s.g)
	deposit := func(from *Node, body string) message.Status {
		env, err := from.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := from.Deposit(ctx, s.gKey.ID(), env)
		if err != nil {
			t.Fatalf("deposit %q: %v", body, err)
		}
		return res.Status
	}
	count := func(from *Node, prefix string, n int) (stored, limited int) {
		for i := 0; i < n; i++ {
			switch st := deposit(from, fmt.Sprint(prefix, i)); st {
			case message.StatusDelivered:
				stored++
			case message.StatusRateLimited:
				limited++
			default:
				t.Fatalf("deposit %s%d: %v", prefix, i, st)
			}
		}
		return stored, limited
	}
	if st, _ := count(c, "c-old-", 2); st != 2 {
		t.Fatalf("c stored %d of 2", st)
	}
	// A floods: 5 (half of 10) stored, the rest refused.
	if st, lim := count(a, "a-", 20); st != 5 || lim != 15 {
		t.Fatalf("a flooding: %d stored, %d refused; want 5 and 15", st, lim)
	}
	// C fills the box up to its own share; nothing of C's was pushed out.
	if st, lim := count(c, "c-", 10); st != 3 || lim != 7 {
		t.Fatalf("c: %d stored, %d refused; want 3 and 7", st, lim)
	}
	if st := s.g.Stats(); st.MailboxDepth != 10 || st.MailboxDropped != 0 {
		t.Fatalf("depth %d dropped %d; want 10 and 0", st.MailboxDepth, st.MailboxDropped)
	}
	// The counts survive a restart.
	s.g.Close()
	s.startGateway()
	connect(t, a, s.g)
	if st := deposit(a, "a-after-restart"); st != message.StatusRateLimited {
		t.Fatalf("a after the gateway's restart: %v; want rate_limited", st)
	}
	b := s.startB()
	connect(t, b, s.g)
	if n, err := b.Pull(ctx, s.gKey.ID()); err != nil || n != 10 {
		t.Fatalf("pulled %d: %v", n, err)
	}
	got := map[string]bool{}
	for i := 0; i < 10; i++ {
		got[string(s.box.next(t, time.Second).Plaintext)] = true
	}
	for _, want := range []string{"c-old-0", "c-old-1", "a-0", "a-4", "c-2"} {
		if !got[want] {
			t.Errorf("%q is not in the mailbox: %v", want, got)
		}
	}
	// B read its mail: A may deposit again.
	connect(t, a, s.g)
	if st := deposit(a, "a-after-pull"); st != message.StatusDelivered {
		t.Fatalf("a after B read its mail: %v; want delivered", st)
	}
}
