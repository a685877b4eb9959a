package nats_test

import (
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/thingnet/thingnet/export"
	"github.com/thingnet/thingnet/export/internal/exporttest"
	expnats "github.com/thingnet/thingnet/export/nats"
	"github.com/thingnet/thingnet/internal/testutil"
)

// natsServer is an embedded nats-server with JetStream on a directory
// that outlives its restarts.
type natsServer struct {
	t    *testing.T
	opts server.Options
	s    *server.Server
}

func startNATS(t *testing.T) *natsServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	n := &natsServer{t: t, opts: server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *natsServer) start() {
	o := n.opts
	s, err := server.NewServer(&o)
	if err != nil {
		n.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		n.t.Fatal("nats-server did not start")
	}
	n.s = s
}

func (n *natsServer) stop() {
	if n.s != nil {
		n.s.Shutdown()
		n.s.WaitForShutdown()
		n.s = nil
	}
}

func (n *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// TestNoneMissingNoDuplicates exports a stream of readings to JetStream
// while nats-server restarts twice and the exporter is stopped and
// started again; then it rewinds the checkpoint so that every reading is
// published a second time. The stream holds each readable reading once.
func TestNoneMissingNoDuplicates(t *testing.T) {
	ns := startNATS(t)
	tn := exporttest.Start(t, 2)
	ctx := testutil.Context(t, 3*time.Minute)

	const perSensor = 300
	produced := make(chan error, 1)
	go func() {
		for i := range perSensor {
			for _, k := range tn.Sensors {
				if _, err := tn.Post(ctx, k, float64(i)); err != nil {
					produced <- err
					return
				}
			}
			if i%20 == 0 {
				if _, err := tn.Post(ctx, tn.Stranger, -1); err != nil {
					produced <- err
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		produced <- nil
	}()

	run := func(name string) (*export.Exporter, func()) {
		sink, err := expnats.Open(ctx, expnats.Config{URL: ns.url(), Name: name})
		if err != nil {
			t.Fatal(err)
		}
		e, err := export.New(export.Options{Name: name, Kind: "nats", Source: tn.Client(tn.Admin), Batch: 40}, sink)
		if err != nil {
			t.Fatal(err)
		}
		stop := exporttest.Run(ctx, e)
		return e, func() { stop(); sink.Close() }
	}
	e, stop := run("stream")
	delivered := func(n uint64) func() bool { return func() bool { return e.Status().Delivered >= n } }
	testutil.WaitFor(t, ctx, "the first messages", delivered(100))
	ns.stop()
	ns.start()
	testutil.WaitFor(t, ctx, "messages after nats-server restarted", delivered(e.Status().Delivered+100))
	stop()
	e, stop = run("stream") // the same export, from its checkpoint
	testutil.WaitFor(t, ctx, "messages after the exporter restarted", delivered(100))
	ns.stop()
	ns.start()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	size := tn.Node.Gateway().Log().Size()
	testutil.WaitFor(t, ctx, "the export at the log's end", func() bool { return e.Status().Checkpoint == size })
	stop()

	// Rewind: a crash after publishing and before moving the checkpoint
	// publishes again; the stream's de-duplication drops it all.
	nc, err := natsgo.Connect(ns.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, expnats.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := kv.Keys(ctx)
	for _, k := range keys {
		if _, err := kv.Put(ctx, k, []byte("0")); err != nil {
			t.Fatal(err)
		}
	}
	e, stop = run("stream")
	testutil.WaitFor(t, ctx, "the export published everything again", func() bool { return e.Status().Checkpoint == size })
	if st := e.Status(); st.Delivered != perSensor*2 {
		t.Errorf("second pass delivered %d; want %d", st.Delivered, perSensor*2)
	}
	stop()

	str, err := js.Stream(ctx, expnats.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != perSensor*2 {
		t.Errorf("stream holds %d messages; want %d (each reading once)", info.State.Msgs, perSensor*2)
	}
	cons, err := str.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	perDevice := map[string]int{}
	for range info.State.Msgs {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var msg export.Message
		if err := json.Unmarshal(m.Data(), &msg); err != nil {
			t.Fatal(err)
		}
		id := m.Headers().Get(jetstream.MsgIDHeader)
		if seen[id] || id != fmt.Sprintf("%s/%d/%d", msg.Gateway, msg.Index, msg.Seq) {
			t.Errorf("message %s (subject %s) twice or with the wrong id", id, m.Subject())
		}
		seen[id] = true
		perDevice[msg.Device]++
		if want := "thingnet.readings.acme." + msg.Device + ".temperature/celsius"; m.Subject() != want {
			t.Errorf("subject %q; want %q", m.Subject(), want)
		}
	}
	for _, k := range tn.Sensors {
		if perDevice[k.ID()] != perSensor {
			t.Errorf("%d messages of %s; want %d", perDevice[k.ID()], k.ID(), perSensor)
		}
	}
	if perDevice[tn.Stranger.ID()] != 0 {
		t.Errorf("%d messages of beta's device, which the export may not read", perDevice[tn.Stranger.ID()])
	}
}
