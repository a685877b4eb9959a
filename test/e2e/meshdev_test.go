package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh"
	"github.com/thingnet/thingnet/mesh/message"
)

// Helpers for the mesh scenarios: devices on the mesh in the test process
// (the device SDK's mesh node, talking to the gateway process over libp2p
// and to its API), and `thingnet msg listen` processes.

// cachedAuthority is the ledger view of a device that trusts its gateway's
// API (mesh.APIAuthority), with device records kept for a second: a
// device's send latency is then the mesh's, not its look-ups'.
type cachedAuthority struct {
	*mesh.APIAuthority
	mu   sync.Mutex
	devs map[string]cachedDevice
}

type cachedDevice struct {
	d  *message.Device
	at time.Time
}

func (a *cachedAuthority) Device(id string) (*message.Device, error) {
	a.mu.Lock()
	c, ok := a.devs[id]
	a.mu.Unlock()
	if ok && time.Since(c.at) < time.Second {
		return c.d, nil
	}
	d, err := a.APIAuthority.Device(id)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.devs[id] = cachedDevice{d, time.Now()}
	a.mu.Unlock()
	return d, nil
}

// meshInfo is GET /v1/mesh of node i.
func (n *Net) meshInfo(ctx context.Context, i int) message.MeshInfo {
	n.t.Helper()
	var info message.MeshInfo
	if err := n.Nodes[i].Client.Get(ctx, "/v1/mesh", &info); err != nil {
		n.t.Fatalf("GET /v1/mesh of node %d: %v", i, err)
	}
	if len(info.Addrs) == 0 {
		n.t.Fatalf("node %d's mesh has no address", i)
	}
	return info
}

// meshDevice starts a mesh node in the test process with key k acting as
// device id (k's own id if ""), reading the ledger through gateway gw's
// API and connected to gw's mesh node. cfg, if set, adjusts the config.
func (n *Net) meshDevice(ctx context.Context, gw int, k *identity.Key, id string, cfg func(*mesh.Config)) *mesh.Node {
	t := n.t
	t.Helper()
	auth, err := mesh.NewAPIAuthority(ctx, n.Nodes[gw].Client)
	if err != nil {
		t.Fatal(err)
	}
	c := mesh.Config{Key: k, ID: id, Authority: &cachedAuthority{APIAuthority: auth, devs: map[string]cachedDevice{}},
		Listen: []string{"/ip4/0.0.0.0/tcp/0"}, NoPubSub: true}
	if cfg != nil {
		cfg(&c)
	}
	m, err := mesh.New(c)
	if err != nil {
		t.Fatalf("mesh node for %s: %v", k.ID(), err)
	}
	t.Cleanup(func() { m.Close() })
	if _, err := m.Connect(ctx, n.meshInfo(ctx, gw).Addrs[0]); err != nil {
		t.Fatalf("%s cannot connect to the gateway's mesh: %v", k.ID(), err)
	}
	return m
}

// listener is a `thingnet msg listen` process: a device on the mesh that
// prints each message delivered to it (one JSON object a line).
type listener struct {
	cmd  *exec.Cmd
	Addr string // its mesh address, /p2p/ included
	mu   sync.Mutex
	got  []map[string]any
	done chan struct{}
}

// startListener runs `thingnet msg listen --key <key>` against node gw
// and waits until it prints its address.
func (n *Net) startListener(ctx context.Context, gw int, key string) *listener {
	t := n.t
	t.Helper()
	cmd := exec.Command(n.Bin, "--node", "http://"+n.Nodes[gw].API, "--keystore", n.Keystore, "-o", "json",
		"msg", "listen", "--key", key, "--listen", "/ip4/127.0.0.1/tcp/0", "--mdns=false")
	cmd.Env = append(os.Environ(), "THINGNET_PASSPHRASE=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("thingnet msg listen: %v", err)
	}
	l := &listener{cmd: cmd, done: make(chan struct{})}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-l.done
	})
	addr := make(chan string, 1)
	var errLines []string
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			line := s.Text()
			if a, ok := strings.CutPrefix(line, "listening on "); ok {
				select {
				case addr <- a:
				default:
				}
			} else {
				l.mu.Lock()
				errLines = append(errLines, line)
				l.mu.Unlock()
			}
		}
	}()
	go func() {
		defer close(l.done)
		dec := json.NewDecoder(stdout)
		for {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				cmd.Wait()
				return
			}
			l.mu.Lock()
			l.got = append(l.got, m)
			l.mu.Unlock()
		}
	}()
	stderrText := func() string {
		l.mu.Lock()
		defer l.mu.Unlock()
		return strings.Join(errLines, "\n")
	}
	select {
	case l.Addr = <-addr:
	case <-l.done:
		t.Fatalf("thingnet msg listen exited: %s", stderrText())
	case <-time.After(60 * time.Second):
		t.Fatalf("thingnet msg listen printed no address in 60 s: %s", stderrText())
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return l
}

// received is what the listener printed so far.
func (l *listener) received() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.got...)
}

// grantMessage lets device `from` send messages to device `to` (signed by
// the organisation's admin, through the CLI).
func (n *Net) grantMessage(org, from, to string) {
	n.MustCLI("grant", "add", "--key", org+"-admin", "--grantor", "org:"+org, "--subject", "device:"+from,
		"--action", message.KindMessage, "--resource", "device:"+to)
}

// keepMailbox makes gateway gw keep device's mailbox, with a daily
// wake-up budget if budget > 0 (ledger labels, through the CLI).
func (n *Net) keepMailbox(org, device string, gw, budget int) {
	args := []string{"device", "update", device, "--key", org + "-admin", "--label", message.LabelMailboxes + "=" + n.Nodes[gw].GatewayID}
	if budget > 0 {
		args = append(args, "--label", message.LabelDownlinks+"="+strconv.Itoa(budget))
	}
	n.MustCLI(args...)
}
