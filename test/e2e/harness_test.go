package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
)

// Manifest describes a network to run: its nodes, organisations, devices
// and the faults to inject.
type Manifest struct {
	Name       string   // scenario name; the chain id is "e2e-<name>"
	Validators int      // validator nodes, each its own OS process and host
	Gateways   []int    // indexes of the nodes that are also gateways (HTTP + MQTT)
	Orgs       []string // organisations in the genesis; admin key "<org>-admin"
	Devices    []Device // devices registered in the genesis
	Faults     []Fault  // injected by Net.RunFaults
	// DefaultLimits keeps the gateways' default per-device and per-address
	// limits; otherwise they are raised, as the harness is one address
	// standing for many devices.
	DefaultLimits bool
	// Mesh: the gateways also run their mesh node (libp2p over TCP, with
	// mailboxes) and a CoAP server.
	Mesh bool
	// Genesis are extra `thingnet genesis create` flags (e.g. budgets).
	Genesis []string
}

// Device is a device of the genesis; its key is named Name in the
// harness keystore.
type Device struct{ Name, Org, Class string }

// FaultKind is what a Fault does.
type FaultKind string

// The faults the harness injects.
const (
	Kill      FaultKind = "kill"      // SIGKILL Nodes
	Restart   FaultKind = "restart"   // start Nodes again (after a Kill)
	Partition FaultKind = "partition" // split the network into Groups
	Heal      FaultKind = "heal"      // undo every partition and loss
	Loss      FaultKind = "loss"      // drop Percent of the packets between nodes (iptables only)
	End       FaultKind = "end"       // nothing: the schedule ends at At
)

// Fault is one fault at a time after the schedule starts.
type Fault struct {
	At      time.Duration
	Kind    FaultKind
	Nodes   []int
	Groups  [][]int
	Percent int
}

func (f Fault) String() string {
	if f.Kind == Partition {
		return fmt.Sprintf("%v partition %v", f.At, f.Groups)
	}
	if f.Kind == Loss {
		return fmt.Sprintf("%v loss %d%%", f.At, f.Percent)
	}
	return fmt.Sprintf("%v %s %v", f.At, f.Kind, f.Nodes)
}

// Net is a running network of node processes.
type Net struct {
	t        *testing.T
	M        Manifest
	Dir      string
	Bin      string
	ChainID  string
	Keystore string // the harness's keystore: org admins and devices
	Nodes    []*Node
	NetNS    bool   // each node in its own network namespace
	Firewall string // how partitions are made: "iptables" or "blackhole routes"; "" without namespaces
	// AttackerIP is a second local address of the harness, for attacks
	// that must not share the legitimate devices' per-address limits.
	AttackerIP string
	prefix     string
	subnet     string // "10.a.b." in namespace mode
}

// Node is one `thingnet node` process.
type Node struct {
	Index     int
	Home      string
	NS        string // network namespace ("" on loopback)
	IP        string
	API       string // host:port of the HTTP API
	MQTT      string // host:port of the MQTT broker ("" unless a gateway)
	P2P       string // host:port of CometBFT p2p
	NodeID    string
	GatewayID string // the gateway's did:key ("" unless a gateway)
	Mesh      string // the gateway's mesh listen multiaddr, without /p2p/ ("" unless Manifest.Mesh)
	CoAP      string // host:port (UDP) of the gateway's CoAP server ("" unless Manifest.Mesh)
	Client    *client.Client
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	logFile   *os.File
	restarts  int
}

// netnsPermitted reports whether this process may create network
// namespaces, veth pairs and bridges (root with CAP_NET_ADMIN and the ip tool).
func netnsPermitted() bool {
	if os.Getenv("THINGNET_E2E_LOOPBACK") == "1" || os.Geteuid() != 0 {
		return false
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return false
	}
	name := fmt.Sprintf("techeck%d", os.Getpid()%100000)
	if exec.Command("ip", "netns", "add", name).Run() != nil {
		return false
	}
	exec.Command("ip", "netns", "del", name).Run()
	return true
}

// sh runs a command and fails the test with its output if it fails.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// A network's names start with te<pid in hex>g<n>: the pid tells
// removeStale whether its run is alive, n tells apart the networks of one
// run (the kernel removes a deleted namespace's veths a moment later, so the
// next scenario must not reuse their names).
var prefixRE = regexp.MustCompile(`^(te([0-9a-f]+)(?:g\d+)?)-n\d+$`)

// netSeq numbers the networks this test process creates.
var netSeq atomic.Int32

// removeStale deletes namespaces, bridges and veths left by harness runs
// whose process is gone (a run killed before its cleanup).
func removeStale() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := prefixRE.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.ParseInt(m[2], 16, 64)
		if syscall.Kill(int(pid), 0) == nil {
			continue // its run is alive
		}
		exec.Command("ip", "netns", "del", f[0]).Run()
		exec.Command("ip", "link", "del", m[1]+"-br").Run()
	}
}

// StartNet creates the network of m (keys, node homes, genesis with the
// CLI), starts every node and waits for the first blocks. Everything is
// removed when the test ends, also on failure.
func StartNet(t *testing.T, m Manifest) *Net {
	t.Helper()
	t.Setenv("THINGNET_PASSPHRASE", "")
	t.Setenv("THINGNET_GATEWAY_PASSPHRASE", "")
	n := &Net{t: t, M: m, Dir: t.TempDir(), Bin: testutil.ThingnetBinary(t), ChainID: "e2e-" + m.Name}
	n.Keystore = filepath.Join(n.Dir, "keys")
	n.NetNS = netnsPermitted()
	if n.NetNS {
		n.setupNetNS()
	} else {
		n.AttackerIP = "127.0.0.2"
		base, err := chain.FreePortBase(m.Validators)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < m.Validators; i++ {
			p := base + 10*i
			n.Nodes = append(n.Nodes, &Node{Index: i, IP: "127.0.0.1",
				P2P: fmt.Sprintf("127.0.0.1:%d", p), API: fmt.Sprintf("127.0.0.1:%d", p+2), MQTT: fmt.Sprintf("127.0.0.1:%d", p+3)})
		}
	}
	n.create()
	// Stop the processes before the namespaces go (cleanups run last first).
	t.Cleanup(n.stopAll)
	for _, nd := range n.Nodes {
		n.Start(nd.Index)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, nd := range n.Nodes {
		n.WaitHeight(ctx, nd.Index, 2)
	}
	t.Logf("network %s up: %d nodes, %s", n.ChainID, len(n.Nodes), n.Where())
	return n
}

// Where says how the nodes are separated.
func (n *Net) Where() string {
	if n.NetNS {
		return fmt.Sprintf("each in its own network namespace on %s0/24 (partitions: %s)", n.subnet, n.Firewall)
	}
	return "loopback ports (network namespaces not permitted: no partitions)"
}

func (n *Net) setupNetNS() {
	t := n.t
	removeStale()
	n.prefix = fmt.Sprintf("te%xg%d", os.Getpid(), netSeq.Add(1)) // ≤ 11 of the 15 characters a link name may have, before "-h<i>"
	routes := sh(t, "ip", "-4", "route")
	for {
		n.subnet = fmt.Sprintf("10.%d.%d.", 100+rand.IntN(100), rand.IntN(256))
		if !strings.Contains(routes, n.subnet) {
			break
		}
	}
	if _, err := exec.LookPath("iptables"); err == nil {
		n.Firewall = "iptables"
	} else {
		n.Firewall = "blackhole routes"
	}
	br := n.prefix + "-br"
	t.Cleanup(func() {
		for _, nd := range n.Nodes {
			exec.Command("ip", "netns", "del", nd.NS).Run()
		}
		exec.Command("ip", "link", "del", br).Run()
	})
	sh(t, "ip", "link", "add", br, "type", "bridge")
	sh(t, "ip", "addr", "add", n.subnet+"254/24", "dev", br)
	sh(t, "ip", "addr", "add", n.subnet+"253/24", "dev", br)
	n.AttackerIP = n.subnet + "253"
	sh(t, "ip", "link", "set", br, "up")
	for i := 0; i < n.M.Validators; i++ {
		nd := &Node{Index: i, NS: fmt.Sprintf("%s-n%d", n.prefix, i), IP: fmt.Sprintf("%s%d", n.subnet, i+1)}
		nd.P2P, nd.API, nd.MQTT = nd.IP+":26656", nd.IP+":26680", nd.IP+":1883"
		n.Nodes = append(n.Nodes, nd)
		host, peer := fmt.Sprintf("%s-h%d", n.prefix, i), fmt.Sprintf("%s-c%d", n.prefix, i)
		sh(t, "ip", "netns", "add", nd.NS)
		sh(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
		sh(t, "ip", "link", "set", peer, "netns", nd.NS)
		sh(t, "ip", "link", "set", host, "master", br, "up")
		sh(t, "ip", "-n", nd.NS, "addr", "add", nd.IP+"/24", "dev", peer)
		sh(t, "ip", "-n", nd.NS, "link", "set", peer, "up")
		sh(t, "ip", "-n", nd.NS, "link", "set", "lo", "up")
	}
}

// CLI runs the thingnet binary against node 0 with the harness keystore.
func (n *Net) CLI(args ...string) (string, error) {
	return n.CLIAt(0, args...)
}

// CLIAt runs the thingnet binary against node i.
func (n *Net) CLIAt(i int, args ...string) (string, error) {
	cmd := exec.Command(n.Bin, append([]string{"--node", "http://" + n.Nodes[i].API, "--keystore", n.Keystore}, args...)...)
	cmd.Env = append(os.Environ(), "THINGNET_PASSPHRASE=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustCLI is CLI that fails the test on error.
func (n *Net) MustCLI(args ...string) string {
	n.t.Helper()
	out, err := n.CLI(args...)
	if err != nil {
		n.t.Fatalf("thingnet %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Key loads a key of the harness keystore.
func (n *Net) Key(name string) *identity.Key {
	n.t.Helper()
	k, err := identity.Keystore{Dir: n.Keystore}.Load(name, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	return k
}

func (n *Net) isGateway(i int) bool {
	for _, g := range n.M.Gateways {
		if g == i {
			return true
		}
	}
	return false
}

// create makes the keys, the node homes and the genesis with the CLI.
func (n *Net) create() {
	t := n.t
	var genesis []string
	for _, o := range n.M.Orgs {
		n.MustCLI("keys", "new", o+"-admin")
		genesis = append(genesis, "--org", o+":"+n.Key(o+"-admin").ID())
	}
	for _, d := range n.M.Devices {
		n.MustCLI("keys", "new", d.Name)
		genesis = append(genesis, "--device", n.Key(d.Name).ID()+":"+d.Org+":"+d.Class)
	}
	valKey := regexp.MustCompile(`validator pub key: (\S+)`)
	nodeID := regexp.MustCompile(`node id:\s+(\S+)`)
	for _, nd := range n.Nodes {
		nd.Home = filepath.Join(n.Dir, fmt.Sprintf("node%d", nd.Index))
		rpc := "tcp://127.0.0.1:26657"
		if !n.NetNS {
			port, _ := strconv.Atoi(nd.P2P[strings.LastIndex(nd.P2P, ":")+1:])
			rpc = fmt.Sprintf("tcp://127.0.0.1:%d", port+1)
		}
		args := []string{"node", "init", "--home", nd.Home, "--moniker", fmt.Sprintf("node%d", nd.Index),
			"--p2p-listen", "tcp://" + nd.P2P, "--external-address", nd.P2P, "--rpc-listen", rpc,
			"--api-listen", nd.API, "--fast-blocks"}
		if !n.M.Mesh || !n.isGateway(nd.Index) {
			args = append(args, "--mesh-listen=")
		}
		if n.isGateway(nd.Index) {
			ks := identity.Keystore{Dir: filepath.Join(nd.Home, "keys")}
			if out, err := n.CLI("--keystore", ks.Dir, "keys", "new", "gateway"); err != nil {
				t.Fatalf("gateway key: %v\n%s", err, out)
			}
			info, err := ks.Info("gateway")
			if err != nil {
				t.Fatal(err)
			}
			nd.GatewayID = info.ID
			args = append(args, "--gateway", "--mqtt-listen", nd.MQTT)
			if n.M.Mesh {
				// Namespaces: the standard ports; loopback: base+4, base+5.
				port, _ := strconv.Atoi(nd.MQTT[strings.LastIndex(nd.MQTT, ":")+1:])
				meshPort, coapPort := port+1, port+2
				if n.NetNS {
					meshPort, coapPort = 26606, 5683
				}
				nd.Mesh, nd.CoAP = fmt.Sprintf("/ip4/%s/tcp/%d", nd.IP, meshPort), fmt.Sprintf("%s:%d", nd.IP, coapPort)
				args = append(args, "--mesh-listen", nd.Mesh, "--mesh-mdns=false", "--coap-listen", nd.CoAP)
			}
			genesis = append(genesis, "--device", info.ID+":"+n.M.Orgs[0]+":gateway")
		} else {
			nd.MQTT = ""
		}
		out := n.MustCLI(args...)
		v, id := valKey.FindStringSubmatch(out), nodeID.FindStringSubmatch(out)
		if v == nil || id == nil {
			t.Fatalf("node init printed no validator key or node id:\n%s", out)
		}
		nd.NodeID = id[1]
		genesis = append(genesis, "--validator", fmt.Sprintf("%s:10:node%d", v[1], nd.Index))
		nd.Client = client.New(nd.API)
		nd.Client.HTTP.Timeout = 15 * time.Second
	}
	// A test network: open organisation creation (load_test creates its own).
	n.MustCLI(append(append([]string{"genesis", "create", "--home", n.Nodes[0].Home, "--chain-id", n.ChainID, "--org-creation", "open"}, genesis...), n.M.Genesis...)...)
	gen, err := os.ReadFile(filepath.Join(n.Nodes[0].Home, "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range n.Nodes {
		if nd.Index > 0 {
			if err := os.WriteFile(filepath.Join(nd.Home, "config", "genesis.json"), gen, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// Each node lists the others as persistent peers, as docs/multihost.md
		// says (the file is edited as TOML, so that the harness also runs a
		// binary built from another version of the tree).
		var peers []string
		for _, o := range n.Nodes {
			if o != nd {
				peers = append(peers, o.NodeID+"@"+o.P2P)
			}
		}
		set := map[string]map[string]any{"p2p": {"persistent_peers": peers}}
		if !n.M.DefaultLimits {
			// One test process stands for many devices on one address: let
			// each connection attempt be judged on its credentials.
			set["gateway.limits"] = map[string]any{"connects_per_sec": 100.0, "connect_burst": 100, "msgs_per_sec": 200.0, "burst": 200}
		}
		if !n.NetNS {
			set["p2p"]["allow_duplicate_ip"], set["p2p"]["pex"] = true, false // every node on 127.0.0.1
		}
		editTOML(t, filepath.Join(nd.Home, "thingnet.toml"), set)
	}
}

// editTOML sets values in a TOML file: table ("a.b") -> key -> value.
func editTOML(t *testing.T, path string, set map[string]map[string]any) {
	t.Helper()
	var doc map[string]any
	if _, err := toml.DecodeFile(path, &doc); err != nil {
		t.Fatal(err)
	}
	for table, kv := range set {
		m := doc
		for _, part := range strings.Split(table, ".") {
			sub, ok := m[part].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[part] = sub
			}
			m = sub
		}
		for k, v := range kv {
			m[k] = v
		}
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Start starts node i's process (inside its namespace).
func (n *Net) Start(i int) {
	t := n.t
	nd := n.Nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		t.Fatalf("node %d is already running", i)
	}
	args := []string{"node", "start", "--home", nd.Home, "--log-level", "warn"}
	var cmd *exec.Cmd
	if nd.NS != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", nd.NS, n.Bin}, args...)...)
	} else {
		cmd = exec.Command(n.Bin, args...)
	}
	cmd.Env = append(os.Environ(), "THINGNET_GATEWAY_PASSPHRASE=", "THINGNET_PASSPHRASE=")
	if nd.logFile == nil {
		f, err := os.OpenFile(filepath.Join(nd.Home, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		nd.logFile = f
	}
	fmt.Fprintf(nd.logFile, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = nd.logFile, nd.logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node %d: %v", i, err)
	}
	nd.cmd, nd.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(cmd, nd.exited)
}

// Kill SIGKILLs node i's process and waits for it to exit.
func (n *Net) Kill(i int) {
	nd := n.Nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return
	}
	nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.exited
	nd.cmd = nil
	nd.restarts++
}

// Running reports whether node i's process runs.
func (n *Net) Running(i int) bool {
	nd := n.Nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return false
	}
	select {
	case <-nd.exited:
		return false
	default:
		return true
	}
}

func (n *Net) stopAll() {
	for _, nd := range n.Nodes {
		n.Kill(nd.Index)
		if nd.logFile != nil {
			nd.logFile.Close()
		}
	}
	if n.t.Failed() {
		for _, nd := range n.Nodes {
			b, err := os.ReadFile(filepath.Join(nd.Home, "node.log"))
			if err != nil {
				b = []byte(err.Error())
			}
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			n.t.Logf("--- node %d log (tail):\n%s", nd.Index, b)
		}
	}
}

// Height is node i's committed height (-1 if it does not answer).
func (n *Net) Height(i int) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := n.Nodes[i].Client.Status(ctx)
	if err != nil {
		return -1
	}
	return st.Height
}

// MaxHeight is the highest height any node reports.
func (n *Net) MaxHeight() int64 {
	var h int64 = -1
	for i := range n.Nodes {
		h = max(h, n.Height(i))
	}
	return h
}

// WaitHeight waits until node i is at height h or more.
func (n *Net) WaitHeight(ctx context.Context, i int, h int64) {
	n.t.Helper()
	for n.Height(i) < h {
		if !n.Running(i) {
			n.t.Fatalf("node %d exited (see %s/node.log)", i, n.Nodes[i].Home)
		}
		select {
		case <-ctx.Done():
			n.t.Fatalf("node %d did not reach height %d (at %d): %v", i, h, n.Height(i), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Partition splits the network into groups: nodes in different groups
// cannot reach each other; the harness still reaches every node.
func (n *Net) Partition(groups ...[]int) {
	t := n.t
	if !n.NetNS {
		t.Skip("partitions need network namespaces (run as root with the ip tool)")
	}
	group := map[int]int{}
	for g, nodes := range groups {
		for _, i := range nodes {
			group[i] = g
		}
	}
	for _, a := range n.Nodes {
		for _, b := range n.Nodes {
			if a == b || group[a.Index] == group[b.Index] {
				continue
			}
			if n.Firewall == "iptables" {
				sh(t, "ip", "netns", "exec", a.NS, "iptables", "-A", "INPUT", "-s", b.IP, "-j", "DROP")
				sh(t, "ip", "netns", "exec", a.NS, "iptables", "-A", "OUTPUT", "-d", b.IP, "-j", "DROP")
			} else {
				sh(t, "ip", "-n", a.NS, "route", "add", "blackhole", b.IP+"/32")
			}
		}
	}
}

// LossBetweenNodes drops percent of the packets each node receives from
// the other nodes (iptables' statistic match: random loss without netem).
// The harness's own traffic is not affected.
func (n *Net) LossBetweenNodes(percent int) {
	t := n.t
	if !n.NetNS || n.Firewall != "iptables" {
		t.Skip("packet loss needs network namespaces and iptables")
	}
	for _, a := range n.Nodes {
		for _, b := range n.Nodes {
			if a != b {
				sh(t, "ip", "netns", "exec", a.NS, "iptables", "-A", "INPUT", "-s", b.IP, "-m", "statistic", "--mode", "random",
					"--probability", fmt.Sprintf("%.2f", float64(percent)/100), "-j", "DROP")
			}
		}
	}
}

// Heal removes every partition.
func (n *Net) Heal() {
	if !n.NetNS {
		return
	}
	for _, a := range n.Nodes {
		if n.Firewall == "iptables" {
			sh(n.t, "ip", "netns", "exec", a.NS, "iptables", "-F")
			continue
		}
		for _, b := range n.Nodes {
			if a != b {
				exec.Command("ip", "-n", a.NS, "route", "del", "blackhole", b.IP+"/32").Run()
			}
		}
	}
}

// RunFaults injects the manifest's faults on schedule; it returns when the
// last one is done or ctx ends.
func (n *Net) RunFaults(ctx context.Context, log func(Fault)) {
	start := time.Now()
	for _, f := range n.M.Faults {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(f.At))):
		}
		switch f.Kind {
		case Kill:
			for _, i := range f.Nodes {
				n.Kill(i)
			}
		case Restart:
			for _, i := range f.Nodes {
				n.Start(i)
			}
		case Partition:
			n.Partition(f.Groups...)
		case Heal:
			n.Heal()
		case Loss:
			n.LossBetweenNodes(f.Percent)
		}
		if log != nil {
			log(f)
		}
	}
}

// CheckNoFork compares the block hash of every height up to the lowest
// node's height on every node: they must be equal (no fork). It returns
// the number of heights compared.
func (n *Net) CheckNoFork(ctx context.Context) int64 {
	t := n.t
	t.Helper()
	low := int64(-1)
	for i := range n.Nodes {
		h := n.Height(i)
		if h < 0 {
			t.Fatalf("no fork: node %d does not answer", i)
		}
		if low < 0 || h < low {
			low = h
		}
	}
	for h := int64(1); h <= low; h++ {
		var first string
		for i, nd := range n.Nodes {
			var b client.BlockInfo
			if err := nd.Client.Get(ctx, fmt.Sprintf("/v1/blocks/%d", h), &b); err != nil {
				t.Fatalf("no fork: block %d of node %d: %v", h, i, err)
			}
			if i == 0 {
				first = b.Hash + "/" + b.AppHash
			} else if b.Hash+"/"+b.AppHash != first {
				t.Fatalf("FORK at height %d: node 0 has %s, node %d has %s/%s", h, first, i, b.Hash, b.AppHash)
			}
		}
	}
	return low
}

// result is a row of the summary table.
type result struct {
	Scenario, Load, Faults, Inputs, Invariant, Result string
	Took                                              time.Duration
}

var (
	summaryMu sync.Mutex
	summary   []result
)

// report adds a row to the summary table printed at the end of the run.
func report(t *testing.T, start time.Time, r result) {
	r.Took = time.Since(start).Round(time.Second)
	r.Result = "pass"
	if t.Failed() {
		r.Result = "FAIL"
	} else if t.Skipped() {
		r.Result = "skip"
	}
	summaryMu.Lock()
	summary = append(summary, r)
	summaryMu.Unlock()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if len(summary) > 0 {
		var b bytes.Buffer
		fmt.Fprintf(&b, "\n%-22s | %-28s | %-34s | %-34s | %-44s | %-6s | %s\n", "scenario", "load held", "faults injected", "inputs tried", "invariant", "result", "took")
		fmt.Fprintln(&b, strings.Repeat("-", 190))
		for _, r := range summary {
			fmt.Fprintf(&b, "%-22s | %-28s | %-34s | %-34s | %-44s | %-6s | %v\n", r.Scenario, r.Load, r.Faults, r.Inputs, r.Invariant, r.Result, r.Took)
		}
		os.Stdout.Write(b.Bytes())
	}
	os.Exit(code)
}

// long skips a long scenario unless THINGNET_E2E=1 (scripts/e2e sets it).
func long(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node processes")
	}
	if os.Getenv("THINGNET_E2E") != "1" {
		t.Skip("a long scenario: run it with THINGNET_E2E=1 (scripts/e2e, make e2e)")
	}
}
