package files

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/thingnet/thingnet/files/firmware"
)

// kubo is a stock IPFS node (kubo's ipfs daemon) on loopback, driven over
// its RPC API.
type kubo struct {
	api string // http://127.0.0.1:port
	pid int    // the daemon's process
}

// kuboBinary finds ipfs in PATH or GOPATH/bin (scripts/test installs it).
func kuboBinary(t testing.TB) string {
	if p, err := exec.LookPath("ipfs"); err == nil {
		return p
	}
	out, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(out)), "bin", "ipfs")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if os.Getenv("THINGNET_REQUIRE_KUBO") != "" {
		t.Fatal("kubo (ipfs) is not installed: scripts/test builds it")
	}
	t.Skip("kubo (ipfs) is not installed: scripts/test builds it (THINGNET_REQUIRE_KUBO=1 makes this a failure)")
	return ""
}

func startKubo(t testing.TB) *kubo { return startKuboRouting(t, "none") }

// startKuboRouting starts a kubo daemon with Routing.Type routing: "none"
// (no content routing: peers find content only among the peers they are
// connected to) or "dht" (kubo's default routing, here with no bootstrap
// peers: a DHT among the daemons connected to each other, as thingnet's
// nodes run one among themselves).
func startKuboRouting(t testing.TB, routing string) *kubo {
	t.Helper()
	bin := kuboBinary(t)
	repo := t.TempDir()
	env := append(os.Environ(), "IPFS_PATH="+repo)
	run := func(args ...string) {
		c := exec.Command(bin, args...)
		c.Env = env
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("init", "--profile=test")
	run("config", "Addresses.Gateway", "")
	run("config", "--json", "Routing.Type", strconv.Quote(routing))
	ctx, cancel := context.WithCancel(context.Background())
	d := exec.CommandContext(ctx, bin, "daemon", "--enable-gc=false")
	d.Env = env
	var logs bytes.Buffer
	d.Stdout, d.Stderr = &logs, &logs
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(repo, "api")); err == nil {
			a, err := ma.NewMultiaddr(strings.TrimSpace(string(b)))
			if err == nil {
				port, _ := a.ValueForProtocol(ma.P_TCP)
				k := &kubo{api: "http://127.0.0.1:" + port, pid: d.Process.Pid}
				var id map[string]any
				if k.call("id", nil, nil, &id) == nil {
					return k
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubo did not start:\n%s", logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// call POSTs to /api/v0/<cmd>; body, if set, is sent as the multipart
// file. out is a *[]byte (the raw answer), an io.Writer (the answer
// streamed to it) or a value the JSON answer decodes into.
func (k *kubo) call(cmd string, args url.Values, body []byte, out any) error {
	var rd io.Reader
	ctype := ""
	if body != nil {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("file", "file")
		fw.Write(body)
		mw.Close()
		rd, ctype = &buf, mw.FormDataContentType()
	}
	req, _ := http.NewRequest(http.MethodPost, k.api+"/api/v0/"+cmd+"?"+args.Encode(), rd)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if w, ok := out.(io.Writer); ok && res.StatusCode == 200 { // streamed, not held in memory
		_, err := io.Copy(w, res.Body)
		return err
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return fmt.Errorf("ipfs %s: %s: %s", cmd, res.Status, b)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (k *kubo) addrInfo(t testing.TB) peer.AddrInfo {
	var id struct {
		ID        string
		Addresses []string
	}
	if err := k.call("id", nil, nil, &id); err != nil {
		t.Fatal(err)
	}
	for _, a := range id.Addresses {
		if strings.Contains(a, "/127.0.0.1/tcp/") {
			ai, err := peer.AddrInfoFromString(a)
			if err == nil {
				return *ai
			}
		}
	}
	t.Fatalf("kubo has no loopback TCP address: %v", id.Addresses)
	return peer.AddrInfo{}
}

// TestKuboInterop: a file added to kubo is fetched by thingnet by its CID,
// and a file added to thingnet is fetched by kubo; the same bytes get the
// same CID in both.
func TestKuboInterop(t *testing.T) {
	k := startKubo(t)
	n := newTestNet(t)
	tn := n.peer("acme", nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// kubo -> thingnet.
	data := randomBytes(t, 3<<20+99)
	var added struct{ Hash string }
	if err := k.call("add", url.Values{"cid-version": {"1"}, "raw-leaves": {"true"}, "chunker": {"size-262144"}, "pin": {"true"}}, data, &added); err != nil {
		t.Fatal(err)
	}
	c, err := firmware.ParseCID(added.Hash)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := tn.files.Get(ctx, c, &got, GetOptions{Pin: true, Peers: []peer.AddrInfo{k.addrInfo(t)}}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("thingnet got different bytes from kubo")
	}
	if again := add(t, n.peer("acme", nil, nil), data); again.CID.String() != added.Hash {
		t.Errorf("same bytes: kubo %s, thingnet %s", added.Hash, again.CID)
	}

	// thingnet -> kubo.
	data2 := randomBytes(t, 2<<20+7)
	mine := add(t, tn, data2)
	addr := fmt.Sprintf("%s/p2p/%s", tn.node.Host().Addrs()[0], tn.node.PeerID())
	if err := k.call("swarm/connect", url.Values{"arg": {addr}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	var cat []byte
	if err := k.call("cat", url.Values{"arg": {mine.CID.String()}, "timeout": {"60s"}}, nil, &cat); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cat, data2) {
		t.Fatalf("kubo got %d bytes, want %d", len(cat), len(data2))
	}
}
