package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/export"
	"github.com/thingnet/thingnet/export/internal/exporttest"
	"github.com/thingnet/thingnet/export/internal/pgtest"
	"github.com/thingnet/thingnet/export/postgres"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// childEnv carries the configuration of an exporter subprocess: the test
// binary runs itself as the exporter, so it can be killed with SIGKILL.
const childEnv = "THINGNET_EXPORT_PG_CHILD"

type childConfig struct {
	Source   string `json:"source"`
	Keystore string `json:"keystore"`
	DSN      string `json:"dsn"`
	Batch    int    `json:"batch"`
}

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(runChild(v))
	}
	os.Exit(m.Run())
}

// runChild exports until it is killed.
func runChild(cfg string) int {
	var c childConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	k, err := identity.Keystore{Dir: c.Keystore}.Load("reader", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	var sink *postgres.Sink
	for sink == nil { // the database may be restarting
		if sink, err = postgres.Open(ctx, postgres.Config{DSN: c.DSN}); err != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	src := client.New(c.Source).WithIdentity(&client.Identity{Key: k, ChainID: exporttest.ChainID})
	e, err := export.New(export.Options{Name: "child", Kind: "postgres", Source: src, Batch: c.Batch}, sink)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	e.Run(ctx)
	return 0
}

// TestExactlyOnce exports a stream of readings while the exporter (a
// subprocess) is killed with SIGKILL at random points, PostgreSQL is
// restarted as a crash would and the network between them is cut: every reading the exporter may read is in
// the table exactly once, and nothing else.
func TestExactlyOnce(t *testing.T) {
	pg := pgtest.Start(t)
	tn := exporttest.Start(t, 3)
	ctx := testutil.Context(t, 4*time.Minute)
	ks := identity.Keystore{Dir: t.TempDir()}
	if _, err := ks.Save("reader", tn.Admin, nil); err != nil {
		t.Fatal(err)
	}
	// The exporter reaches PostgreSQL through a proxy the test can cut.
	px := startProxy(t, fmt.Sprintf("127.0.0.1:%d", pg.Port))
	dsn := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", px.addr())
	cfg, _ := json.Marshal(childConfig{Source: tn.API, Keystore: ks.Dir, DSN: dsn, Batch: 50})

	// The stream: 1,500 readings of acme's sensors and 100 of beta's
	// device (which acme's admin may not read), posted while the
	// exporter is killed and the database restarted.
	const perSensor, stranger = 500, 100
	produced := make(chan error, 1)
	go func() {
		for i := range perSensor {
			for _, k := range tn.Sensors {
				if _, err := tn.Post(ctx, k, float64(i)+0.25); err != nil {
					produced <- err
					return
				}
			}
			if i < stranger {
				if _, err := tn.Post(ctx, tn.Stranger, -1); err != nil {
					produced <- err
					return
				}
			}
			if i%50 == 0 {
				time.Sleep(20 * time.Millisecond) // a stream, not one burst
			}
		}
		produced <- nil
	}()

	var conn *pgx.Conn
	// scan reads one row of q, connecting again while the database restarts.
	scan := func(q string, dst ...any) {
		for ctx.Err() == nil {
			if conn == nil {
				conn = connect(t, ctx, pg.DSN)
			}
			if err := conn.QueryRow(ctx, q).Scan(dst...); err == nil {
				return
			}
			conn.Close(ctx)
			conn = nil
			time.Sleep(50 * time.Millisecond)
		}
	}
	rows := func() int {
		var n int
		scan(`SELECT count(*) FROM thingnet_readings`, &n)
		return n
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	waitRows := func(what string, n int) {
		testutil.WaitFor(t, ctx, what, func() bool { return rows() >= n })
	}

	child := start()
	waitRows("the first rows", 100)
	time.Sleep(time.Duration(rand.N(200)) * time.Millisecond) // somewhere between two statements
	kill(child)
	t.Logf("killed the exporter at %d rows", rows())
	child = start()
	waitRows("rows after the restart", rows()+100)
	pg.Restart()
	t.Logf("restarted PostgreSQL at %d rows", rows())
	waitRows("rows after PostgreSQL restarted", rows()+100)
	time.Sleep(time.Duration(rand.N(200)) * time.Millisecond)
	px.cut() // a network cut: every connection of the exporter reset
	t.Logf("cut the exporter's connections at %d rows", rows())
	waitRows("rows after the network cut", rows()+100)
	time.Sleep(time.Duration(rand.N(200)) * time.Millisecond)
	kill(child)
	pg.Restart() // both down at once
	t.Logf("killed the exporter and restarted PostgreSQL at %d rows", rows())
	child = start()
	defer kill(child)
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	size := tn.Node.Gateway().Log().Size()
	testutil.WaitFor(t, ctx, "the checkpoint at the log's end", func() bool {
		var next int64
		scan(`SELECT next_index FROM thingnet_readings_checkpoints`, &next)
		return uint64(next) == size
	})

	// Exactly the readable readings of the log, each once.
	want := map[string]float64{}
	page, err := tn.Client(tn.Admin).LogEntries(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for from := uint64(0); from < page.Size; {
		p, err := tn.Client(tn.Admin).LogEntries(ctx, from, client.MaxLogEntries)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			for _, r := range e.Readings {
				want[fmt.Sprintf("%d/%s/%d", e.Index, r.Device, r.Seq)] = *r.Value
			}
		}
		from = p.Next
	}
	if len(want) != perSensor*len(tn.Sensors) {
		t.Fatalf("the log holds %d readable readings; want %d", len(want), perSensor*len(tn.Sensors))
	}
	var total, distinct, strangers int
	scan(`SELECT count(*), count(DISTINCT (gateway, log_index, seq)), count(*) FILTER (WHERE device = '`+tn.Stranger.ID()+`') FROM thingnet_readings`,
		&total, &distinct, &strangers)
	if total != len(want) || distinct != total || strangers != 0 {
		t.Fatalf("table: %d rows, %d distinct, %d of beta's device; want %d, %d, 0", total, distinct, strangers, len(want), len(want))
	}
	res, err := conn.Query(ctx, `SELECT log_index, device, seq, value, value_text, org, gateway, proof FROM thingnet_readings`)
	if err != nil {
		t.Fatal(err)
	}
	for res.Next() {
		var (
			idx, seq              int64
			dev, text, org, gw, p string
			v                     float64
		)
		if err := res.Scan(&idx, &dev, &seq, &v, &text, &org, &gw, &p); err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprintf("%d/%s/%d", idx, dev, seq)
		if w, ok := want[k]; !ok || w != v || text != strconv.FormatFloat(w, 'g', -1, 64) || org != "acme" || gw != tn.Gateway.ID() || p != tn.API+"/v1/readings/"+strconv.FormatInt(idx, 10) {
			t.Errorf("row %s = %v %q %s %s %s; want %v of acme", k, v, text, org, gw, p, w)
		}
		delete(want, k)
	}
	if res.Err() != nil {
		t.Fatal(res.Err())
	}
	if len(want) != 0 {
		t.Errorf("%d readings missing", len(want))
	}

	// psql reads the table, and a row's proof locator verifies.
	out, err := pg.PSQL(ctx, "SELECT count(*) FROM thingnet_readings WHERE org = 'acme'")
	if err != nil || out != strconv.Itoa(total) {
		t.Errorf("psql count = %q, %v; want %d", out, err, total)
	}
	// Every row carries the gateway's receive time; the test's readings
	// are dated in 2023, so the gateway flagged them all late.
	var noRecv, notLate int
	scan(`SELECT count(*) FILTER (WHERE received_at IS NULL OR received_at < now() - interval '1 hour'), count(*) FILTER (WHERE NOT late) FROM thingnet_readings`, &noRecv, &notLate)
	if noRecv != 0 || notLate != 0 {
		t.Errorf("%d rows without this run's receive time, %d not flagged late", noRecv, notLate)
	}
	var idx int64
	if err := conn.QueryRow(ctx, `SELECT log_index FROM thingnet_readings ORDER BY log_index DESC LIMIT 1`).Scan(&idx); err != nil {
		t.Fatal(err)
	}
	c := tn.Client(tn.Admin)
	p, err := c.WaitReadingProof(ctx, uint64(idx), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyReading(ctx, exporttest.ChainID, p); err != nil {
		t.Errorf("row of entry %d does not verify: %v", idx, err)
	}
	if p.Withheld != nil {
		t.Errorf("entry %d withheld: %v", idx, p.Withheld)
	}
}

func connect(t *testing.T, ctx context.Context, dsn string) *pgx.Conn {
	t.Helper()
	for {
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			return c
		}
		if ctx.Err() != nil {
			t.Fatalf("connecting to PostgreSQL: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReadGrant: an export whose identity has a read grant on one of
// acme's devices exports that device's readings and none of the others'.
func TestReadGrant(t *testing.T) {
	pg := pgtest.Start(t)
	tn := exporttest.Start(t, 2)
	ctx := testutil.Context(t, 2*time.Minute)
	reader := testutil.Key(t, identity.Ed25519)
	allowed, denied := tn.Sensors[0], tn.Sensors[1]
	// The reader is the admin of its own organisation, which holds a read
	// grant on one of acme's devices.
	if _, err := client.New(tn.API).Send(ctx, reader, "", &record.OrgCreate{ID: "readers"}, true); err != nil {
		t.Fatal(err)
	}
	if err := tn.Grant(ctx, "org:readers", "device:"+allowed.ID()); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		for _, k := range []*identity.Key{allowed, denied, tn.Stranger} {
			if _, err := tn.Post(ctx, k, float64(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	sink, err := postgres.Open(ctx, postgres.Config{DSN: pg.DSN, Table: "granted"})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	e, err := export.New(export.Options{Name: "granted", Kind: "postgres", Source: tn.Client(reader), After: export.AfterAnchored}, sink)
	if err != nil {
		t.Fatal(err)
	}
	defer exporttest.Run(ctx, e)()
	size := tn.Node.Gateway().Log().Size()
	testutil.WaitFor(t, ctx, "the export to reach the log's end", func() bool { return e.Status().Checkpoint == size })
	out, err := pg.PSQL(ctx, "SELECT device, count(*), min(anchor_height) > 0 FROM granted GROUP BY device")
	if err != nil {
		t.Fatal(err)
	}
	if want := allowed.ID() + "|20|t"; out != want {
		t.Errorf("exported = %q; want only %q (20 anchored readings of the granted device)", out, want)
	}
	if st := e.Status(); st.Skipped != 40 || st.Delivered != 20 || st.LagEntries != 0 {
		t.Errorf("status = %+v; want 20 delivered, 40 skipped, no lag", st)
	}
}

// proxy forwards TCP connections to a target until cut resets them all.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	t.Cleanup(func() { l.Close(); p.cut() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

// cut resets every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, as a broken network
		}
		c.Close()
	}
	p.conns = nil
}
