package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/gateway"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// ackedTx is a tx a node acknowledged as committed.
type ackedTx struct {
	Hash   string
	Height int64
	Org    string
}

// TxLoad submits org.create txs (each by a fresh key, so a lost tx cannot
// block the next by its nonce) through the HTTP API of running nodes and
// remembers those acknowledged as committed (?wait=commit answered OK).
type TxLoad struct {
	n      *Net
	wg     sync.WaitGroup
	mu     sync.Mutex
	acked  []ackedTx
	tried  int
	failed int
}

// StartTxLoad runs workers, each submitting one tx after another with
// pause between them, until ctx ends.
func (n *Net) StartTxLoad(ctx context.Context, workers int, pause time.Duration) *TxLoad {
	l := &TxLoad{n: n}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				l.one(ctx, fmt.Sprintf("load-%d-%d", w, k))
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}()
	}
	return l
}

func (l *TxLoad) one(ctx context.Context, org string) {
	var up []int
	for i := range l.n.Nodes {
		if l.n.Running(i) {
			up = append(up, i)
		}
	}
	if len(up) == 0 {
		return
	}
	c := l.n.Nodes[up[rand.IntN(len(up))]].Client
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := c.Status(sctx)
	if err != nil {
		return // the node died between the check and the call: not tried
	}
	key, err := identity.GenerateKey(identity.Ed25519)
	if err != nil {
		panic(err)
	}
	raw, err := record.NewTx(key, key.ID(), st.ChainID, 1, st.Height+client.TxLifetime, &record.OrgCreate{ID: org})
	if err != nil {
		panic(err)
	}
	l.mu.Lock()
	l.tried++
	l.mu.Unlock()
	res, err := c.Submit(sctx, raw, true)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || res.Code != 0 || res.Height == 0 {
		l.failed++ // not acknowledged: the node died, or the commit timed out
		return
	}
	l.acked = append(l.acked, ackedTx{Hash: res.Hash, Height: res.Height, Org: org})
}

// Stop waits for the workers (after their ctx ended).
func (l *TxLoad) Stop() { l.wg.Wait() }

// Counts returns how many txs were tried, acknowledged and not acknowledged.
func (l *TxLoad) Counts() (tried, acked, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tried, len(l.acked), l.failed
}

// CheckAcked checks every acknowledged tx on every node: in the block it
// was acknowledged at, and its organisation in the state. It returns the
// number of lost ones (each also reported as a test error).
func (l *TxLoad) CheckAcked(ctx context.Context, t *testing.T) int {
	t.Helper()
	lost := 0
	for _, a := range l.acked {
		for i, nd := range l.n.Nodes {
			var info client.TxInfo
			if err := nd.Client.Get(ctx, "/v1/txs/"+a.Hash, &info); err != nil {
				t.Errorf("acknowledged tx %s (height %d) missing on node %d: %v", a.Hash, a.Height, i, err)
				lost++
				continue
			}
			if info.Height != a.Height || info.Code != 0 {
				t.Errorf("acknowledged tx %s: node %d has it at height %d code %d, acknowledged at %d", a.Hash, i, info.Height, info.Code, a.Height)
				lost++
			}
			var org map[string]any
			if err := nd.Client.Get(ctx, "/v1/orgs/"+a.Org, &org); err != nil {
				t.Errorf("organisation %s of acknowledged tx %s missing on node %d: %v", a.Org, a.Hash, i, err)
				lost++
			}
		}
	}
	return lost
}

// mqttConnect connects a paho client as device id with the given password.
func mqttConnect(addr, id, password string) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetProtocolVersion(4).
		SetClientID(id).SetUsername(id).SetPassword(password).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("mqtt connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	return c, nil
}

// deviceToken is a device's CWT password for this chain.
func (n *Net) deviceToken(k *identity.Key, as string) string {
	tok, err := identity.NewCWT(k, as, n.ChainID, time.Now(), time.Hour)
	if err != nil {
		n.t.Fatal(err)
	}
	return identity.EncodeCWTPassword(tok)
}

// ReadingLoad publishes signed readings at QoS 1 to a gateway's MQTT
// broker and remembers those acknowledged (PUBACK).
type ReadingLoad struct {
	mu        sync.Mutex
	acked     map[string]map[uint64]bool // device -> seqs
	published int
	reconnect int
	wg        sync.WaitGroup
}

// StartReadingLoad publishes one reading per device every pause, through
// the broker at gateway node g, reconnecting while the gateway is down.
func (n *Net) StartReadingLoad(ctx context.Context, g int, devices []string, pause time.Duration) *ReadingLoad {
	l := &ReadingLoad{acked: map[string]map[uint64]bool{}}
	for _, name := range devices {
		k := n.Key(name)
		l.acked[k.ID()] = map[uint64]bool{}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var c paho.Client
			defer func() {
				if c != nil {
					c.Disconnect(0)
				}
			}()
			for seq := uint64(1); ctx.Err() == nil; {
				if c == nil || !c.IsConnectionOpen() {
					var err error
					if c, err = mqttConnect(n.Nodes[g].MQTT, k.ID(), n.deviceToken(k, k.ID())); err != nil {
						c = nil
						time.Sleep(300 * time.Millisecond)
						continue
					}
					l.mu.Lock()
					l.reconnect++
					l.mu.Unlock()
				}
				v := float64(seq)
				raw, err := reading.Sign(k, k.ID(), reading.Reading{Seq: seq, Time: time.Now(), ContentType: "count", Value: &v})
				if err != nil {
					panic(err)
				}
				tok := c.Publish(gateway.ReadingsTopic(k.ID()), 1, false, raw)
				l.mu.Lock()
				l.published++
				l.mu.Unlock()
				if tok.WaitTimeout(10*time.Second) && tok.Error() == nil && c.IsConnectionOpen() {
					l.mu.Lock()
					l.acked[k.ID()][seq] = true
					l.mu.Unlock()
				}
				seq++ // a reading not acknowledged is given up: the next has a new seq
				time.Sleep(pause)
			}
		}()
	}
	return l
}

// Stop waits for the publishers (after their ctx ended).
func (l *ReadingLoad) Stop() { l.wg.Wait() }

// Acked is the number of acknowledged readings.
func (l *ReadingLoad) Acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.acked {
		n += len(s)
	}
	return n
}

// unproven is a log entry whose proof does not verify.
type unproven struct {
	Index  uint64
	Device string
	Err    error
}

// storedReadings walks gateway node g's data log from entry 0 and proves
// every entry through node via (not the gateway): it returns the
// readings stored, as device -> seq -> times stored, and the entries whose
// proof does not verify.
func (n *Net) storedReadings(ctx context.Context, g, via int) (map[string]map[uint64]int, []unproven) {
	t := n.t
	t.Helper()
	// Values are private: each organisation's admin reads its devices'.
	var readers []*client.Client
	for _, o := range n.M.Orgs {
		readers = append(readers, n.Nodes[g].Client.WithIdentity(&client.Identity{Key: n.Key(o + "-admin")}))
	}
	read := func(i uint64) (p *proof.Reading, err error) {
		for _, c := range readers {
			if p, err = c.Reading(ctx, i); err != nil || p.Withheld == nil {
				return p, err
			}
		}
		return p, err
	}
	// Read every entry (each waits for its anchor), then verify them
	// through node via at once: a proof of the latest state is checked
	// against the next block's header, so one by one each would wait for
	// a block.
	var proofs []*proof.Reading
	for i := uint64(0); ; i++ {
		p, err := read(i)
		for err == nil && errors.Is(p.Err(), proof.ErrNotAnchored) {
			select {
			case <-ctx.Done():
				t.Fatalf("log entry %d never anchored", i)
			case <-time.After(200 * time.Millisecond):
			}
			p, err = read(i)
		}
		if err != nil {
			var e *client.Error
			if errors.As(err, &e) && e.Status == http.StatusNotFound {
				break // past the end of the log
			}
			t.Fatalf("log entry %d: %v", i, err)
		}
		proofs = append(proofs, p)
	}
	verified := make([]*proof.Verified, len(proofs))
	errs := make([]error, len(proofs))
	var wg sync.WaitGroup
	work := make(chan int)
	for range min(32, len(proofs)) {
		wg.Go(func() {
			for i := range work {
				verified[i], errs[i] = n.Nodes[via].Client.VerifyReading(ctx, n.ChainID, proofs[i])
			}
		})
	}
	for i := range proofs {
		work <- i
	}
	close(work)
	wg.Wait()
	stored := map[string]map[uint64]int{}
	var bad []unproven
	for k, p := range proofs {
		i, v, err := uint64(k), verified[k], errs[k]
		if err != nil {
			env, derr := reading.Decode(p.Envelope)
			if derr != nil {
				t.Fatalf("log entry %d holds no reading envelope: %v", i, derr)
			}
			bad = append(bad, unproven{Index: i, Device: env.Device, Err: err})
			if stored[env.Device] == nil {
				stored[env.Device] = map[uint64]int{}
			}
			for _, r := range env.Readings {
				stored[env.Device][r.Seq]++
			}
			continue
		}
		for _, r := range v.Envelope.Readings {
			if stored[v.Envelope.Device] == nil {
				stored[v.Envelope.Device] = map[uint64]int{}
			}
			stored[v.Envelope.Device][r.Seq]++
		}
	}
	return stored, bad
}
