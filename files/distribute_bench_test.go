package files

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/mesh/meshtest"
)

// BenchmarkDistribute: one seeder, N peers fetching the same 64 MiB file at
// once. "thingnet" runs each node (mesh host, bitswap via boxo, Pebble
// store) in its own OS process, as kubo runs each daemon in its own: the
// test binary started again as a peer (TestDistributePeer), driven over
// its stdin/stdout. "kubo" does the same with kubo daemons, in the same
// run, with no content routing, and "kubo-dht" with kubo's default DHT
// routing (among the daemons: no bootstrap peers), as thingnet's nodes
// run; "thingnet-inproc" runs all thingnet nodes in this process (how the
// figures before were taken). MB/s is the aggregate: N × file size over
// the time until the last peer has it (and checked its SHA-256).
//
//	go test -run '^$' -bench 'Distribute/^(thingnet|kubo|kubo-dht)$/' -benchtime 1x -count 3 -timeout 60m ./files/
//
// THINGNET_DISTRIBUTE_PROFILE=DIR writes a CPU profile of each thingnet
// peer process to DIR (seed.pprof, peer-<i>.pprof).
func BenchmarkDistribute(b *testing.B) {
	const size = 64 << 20
	for _, peers := range []int{4, 8} {
		b.Run(fmt.Sprintf("thingnet/peers=%d", peers), func(b *testing.B) {
			benchProcesses(b, peers, size)
		})
		b.Run(fmt.Sprintf("kubo/peers=%d", peers), func(b *testing.B) {
			benchKubo(b, peers, size, "none")
		})
		b.Run(fmt.Sprintf("kubo-dht/peers=%d", peers), func(b *testing.B) {
			benchKubo(b, peers, size, "dht")
		})
		b.Run(fmt.Sprintf("thingnet-inproc/peers=%d", peers), func(b *testing.B) {
			benchInProcess(b, peers, size)
		})
	}
}

// benchProcesses: the seeder and every peer in its own process.
func benchProcesses(b *testing.B, peers, size int) {
	b.StopTimer()
	dir := b.TempDir()
	l, err := meshtest.New(filepath.Join(dir, "ledger"), "acme", "beta")
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]*identity.Key, peers+1)
	for i := range keys {
		org := "beta"
		if i == 0 {
			org = "acme"
		}
		if keys[i], err = l.Device(org, "gateway", identity.Ed25519); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil { // the processes read copies of it
		b.Fatal(err)
	}
	procs := make([]*peerProc, len(keys))
	var wg sync.WaitGroup
	errs := make([]error, len(keys))
	for i, k := range keys {
		name := "seed"
		if i > 0 {
			name = fmt.Sprintf("peer-%d", i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			procs[i], errs[i] = startPeerProc(b, name, filepath.Join(dir, "ledger"), k)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	seed, ps := procs[0], procs[1:]
	var pids []int
	for _, p := range procs {
		pids = append(pids, p.pid)
	}
	var cpu time.Duration
	var blocks int64
	b.SetBytes(int64(size * peers))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		added, err := seed.do("add " + strconv.Itoa(size))
		if err != nil {
			b.Fatal(err)
		}
		root, sum := added[0], added[1]
		for _, p := range ps {
			if _, err := p.do("connect " + seed.id + " " + seed.addr); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		cpu0 := processCPU(pids)
		errs := make(chan error, peers)
		var received atomic.Int64 // blocks, over all peers
		for _, p := range ps {
			go func() {
				got, err := p.do("get " + root)
				if err == nil && (got[0] != strconv.Itoa(size) || got[1] != sum) {
					err = fmt.Errorf("%s got %s bytes, SHA-256 %s; want %d, %s", p.name, got[0], got[1], size, sum)
				}
				if err == nil {
					n, _ := strconv.ParseInt(got[2], 10, 64)
					received.Add(n)
				}
				errs <- err
			}()
		}
		for range peers {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu += processCPU(pids) - cpu0
		blocks += received.Load()
	}
	reportCPU(b, cpu, size*peers)
	// Each peer needs every block once (257 for 64 MiB): what it receives
	// beyond that came twice.
	b.ReportMetric(float64(blocks)/float64(b.N*peers), "blocks-rcvd/peer")
}

// benchKubo: the same with kubo daemons, routing "none" (the daemons
// fetch from the peers they are connected to: the seed) or "dht" (kubo's
// default routing, a DHT among the daemons, as thingnet's nodes have).
func benchKubo(b *testing.B, peers, size int, routing string) {
	b.StopTimer()
	seed := startKuboRouting(b, routing)
	var ks []*kubo
	for range peers {
		ks = append(ks, startKuboRouting(b, routing))
	}
	seedAddr := seed.addrInfo(b)
	pids := []int{seed.pid}
	for _, k := range ks {
		pids = append(pids, k.pid)
	}
	var cpu time.Duration
	b.SetBytes(int64(size * peers))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		data := randomBytes(b, size)
		sum := sha256.Sum256(data)
		var added struct{ Hash string }
		if err := seed.call("add", url.Values{"cid-version": {"1"}, "raw-leaves": {"true"}, "pin": {"true"}}, data, &added); err != nil {
			b.Fatal(err)
		}
		for _, k := range ks {
			if err := k.call("swarm/connect", url.Values{"arg": {seedAddr.Addrs[0].String() + "/p2p/" + seedAddr.ID.String()}}, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		cpu0 := processCPU(pids)
		errs := make(chan error, peers)
		for _, k := range ks {
			go func() {
				h := sha256.New()
				err := k.call("cat", url.Values{"arg": {added.Hash}, "timeout": {"300s"}}, nil, h)
				if err == nil && !bytes.Equal(h.Sum(nil), sum[:]) {
					err = errors.New("kubo got other bytes")
				}
				errs <- err
			}()
		}
		for range peers {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu += processCPU(pids) - cpu0
	}
	reportCPU(b, cpu, size*peers)
}

// reportCPU reports the CPU time that the nodes' processes used while the
// peers fetched: in seconds per run and in milliseconds per MB delivered.
func reportCPU(b *testing.B, cpu time.Duration, bytesPerOp int) {
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N)/(float64(bytesPerOp)/1e6), "cpu-ms/MB")
}

// processCPU is the user and system CPU time the processes have used so
// far, from /proc/PID/stat (Linux; clock ticks of 10 ms).
func processCPU(pids []int) time.Duration {
	var t time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The fields after the command name (in parentheses): utime and
		// stime are the 12th and 13th.
		_, rest, _ := strings.Cut(string(b), ") ")
		if f := strings.Fields(rest); len(f) > 12 {
			for _, v := range f[11:13] {
				n, _ := strconv.ParseInt(v, 10, 64)
				t += time.Duration(n) * 10 * time.Millisecond
			}
		}
	}
	return t
}

func benchInProcess(b *testing.B, peers, size int) {
	b.StopTimer()
	n := newTestNet(b)
	seed := n.peer("acme", nil, nil)
	b.SetBytes(int64(size * peers))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		a := add(b, seed, randomBytes(b, size))
		var ps []*testPeer
		for range peers {
			ps = append(ps, n.peer("beta", seed, nil))
		}
		b.StartTimer()
		errs := make(chan error, peers)
		for _, p := range ps {
			go func() {
				_, err := p.files.Get(context.Background(), a.CID, io.Discard, GetOptions{Peers: []peer.AddrInfo{seed.info()}})
				errs <- err
			}()
		}
		for range peers {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
	}
}

// peerEnv tells the test binary to run as a BenchmarkDistribute peer:
// "<ledger dir>,<name>,<private key, DER in hex>".
const peerEnv = "THINGNET_DISTRIBUTE_PEER"

// peerProc is a thingnet node in another process.
type peerProc struct {
	name     string
	pid      int
	id, addr string
	in       io.Writer
	out      *bufio.Scanner
	stderr   *bytes.Buffer
	mu       sync.Mutex
}

func startPeerProc(b *testing.B, name, ledgerDir string, k *identity.Key) (*peerProc, error) {
	der, err := identity.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDistributePeer$", "-test.count=1")
	cmd.Env = append(os.Environ(), peerEnv+"="+ledgerDir+","+name+","+hex.EncodeToString(der))
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &peerProc{name: name, in: in, out: bufio.NewScanner(out), stderr: &bytes.Buffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.pid = cmd.Process.Pid
	b.Cleanup(func() {
		in.Close() // the peer exits at the end of its input
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }() //nolint:errcheck
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill() //nolint:errcheck
			<-done
		}
	})
	ready, err := p.read()
	if err != nil {
		return nil, err
	}
	p.id, p.addr = ready[0], ready[1]
	return p, nil
}

// do sends a command and returns the fields of the answer.
func (p *peerProc) do(line string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := fmt.Fprintln(p.in, line); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", p.name, err, p.stderr)
	}
	return p.read()
}

func (p *peerProc) read() ([]string, error) {
	for p.out.Scan() {
		f := strings.Fields(p.out.Text())
		if len(f) == 0 || f[0] != "peer:" {
			continue // the test framework's own lines
		}
		if f[1] == "err" {
			return nil, fmt.Errorf("%s: %s", p.name, strings.Join(f[2:], " "))
		}
		return f[2:], nil
	}
	return nil, fmt.Errorf("%s exited: %v\n%s", p.name, p.out.Err(), p.stderr)
}

// TestDistributePeer is a BenchmarkDistribute peer when the benchmark
// starts the test binary as one; otherwise it skips. It runs a mesh node
// and a file service with its own copy of the benchmark's ledger, answers
// on stdout ("peer: ready|added|connected|got ..." or "peer: err ...") to
// commands on stdin (add SIZE, connect PEER ADDR, get CID), and exits at
// the end of its input.
func TestDistributePeer(t *testing.T) {
	spec := os.Getenv(peerEnv)
	if spec == "" {
		t.Skip("a BenchmarkDistribute peer process: started by the benchmark")
	}
	parts := strings.SplitN(spec, ",", 3)
	if len(parts) != 3 {
		t.Fatalf("%s=%q: want <ledger dir>,<name>,<key>", peerEnv, spec)
	}
	der, err := hex.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	k, err := identity.ParsePrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("THINGNET_DISTRIBUTE_PROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, parts[1]+".pprof"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		pprof.StartCPUProfile(f) //nolint:errcheck
		defer pprof.StopCPUProfile()
	}
	copyDir := filepath.Join(t.TempDir(), "ledger")
	if err := os.CopyFS(copyDir, os.DirFS(parts[0])); err != nil {
		t.Fatal(err)
	}
	app, err := ledger.NewApp(ledger.Config{Dir: copyDir})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	auth := mesh.NewLedgerAuthority(func() (*ledger.State, error) { return app.View(0) }, func() string { return meshtest.ChainID })
	node, err := mesh.New(mesh.Config{Key: k, Authority: auth, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoPubSub: true, DHT: true, Relay: true})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	fs, err := New(Config{Host: node.Host(), Routing: node.Routing(), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	say := func(f string, args ...any) { fmt.Printf("peer: "+f+"\n", args...) }
	say("ready %s %s", node.PeerID(), node.Host().Addrs()[0])
	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) < 2 {
			say("err bad command %q", in.Text())
			continue
		}
		switch f[0] {
		case "add":
			n, err := strconv.Atoi(f[1])
			if err != nil {
				say("err %v", err)
				continue
			}
			data := make([]byte, n)
			rand.Read(data)
			a, err := fs.Add(ctx, bytes.NewReader(data), nil)
			if err != nil {
				say("err %v", err)
				continue
			}
			sum := sha256.Sum256(data)
			say("added %s %x", a.CID, sum)
		case "connect":
			ai, err := peer.AddrInfoFromString(f[2] + "/p2p/" + f[1])
			if err == nil {
				err = node.Host().Connect(ctx, *ai)
			}
			if err != nil {
				say("err %v", err)
				continue
			}
			say("connected %s", f[1])
		case "get":
			c, err := cid.Decode(f[1])
			if err != nil {
				say("err %v", err)
				continue
			}
			h := sha256.New()
			n, err := fs.Get(ctx, c, h, GetOptions{})
			if err != nil {
				say("err %v", err)
				continue
			}
			say("got %d %x %d", n, h.Sum(nil), fs.Transfers().BlocksReceived)
		default:
			say("err unknown command %q", f[0])
		}
	}
}
