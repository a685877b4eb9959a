package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	dbm "github.com/cometbft/cometbft-db"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cosmos/gogoproto/proto"

	"github.com/thingnet/thingnet/internal/pebblelog"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
)

// stop ends node i's process with SIGTERM (a clean stop, as an operator
// would before checking its stores), SIGKILL after a minute.
func (n *Net) stop(i int) {
	nd := n.Nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return
	}
	nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-nd.exited:
	case <-time.After(time.Minute):
		nd.cmd.Process.Signal(syscall.SIGKILL)
		<-nd.exited
	}
	nd.cmd = nil
}

// storeReport is what `thingnet verify store -o json` prints (the fields
// this test reads).
type storeReport struct {
	Clean       bool
	Alterations []struct{ Store, Item, What, Detail string }
	Readings    struct {
		Size, Anchors  uint64
		FirstBadAnchor *record.Anchor `json:"first_bad_anchor"`
	}
	Blocks struct{ Height int64 }
}

// verifyStore runs `thingnet verify store` on a home, as a process; it
// returns the report and the exit status.
func (n *Net) verifyStore(t *testing.T, home string, args ...string) (*storeReport, int) {
	t.Helper()
	cmd := exec.Command(n.Bin, append([]string{"verify", "store", "--home", home, "-o", "json"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep storeReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("verify store (exit %d): %v\n%s\n%s", code, err, out.Bytes(), errOut.Bytes())
	}
	return &rep, code
}

// TestTamper runs a 4-validator network with one gateway under tx and
// reading load, stops the gateway's node, and checks a copy of its data
// directory with `thingnet verify store` run as a process: clean as it is
// (and its last block the same as another node's); then, with bytes flipped
// in its reading log (a reading's payload, another's signature) and block
// store (a transaction, a header's app hash, a commit signature), the
// report names exactly those items, and the command exits with status 3.
func TestTamper(t *testing.T) {
	long(t)
	start := time.Now()
	devices := []string{"sensor-1", "sensor-2"}
	var devs []Device
	for _, d := range devices {
		devs = append(devs, Device{Name: d, Org: "acme", Class: "sensor"})
	}
	n := StartNet(t, Manifest{Name: "tamper", Validators: 4, Gateways: []int{1}, Orgs: []string{"acme"}, Devices: devs})
	r := result{Scenario: "tamper", Invariant: "each altered item reported, nothing else"}
	defer func() { report(t, start, r) }()

	ctx, cancel := context.WithCancel(context.Background())
	txs := n.StartTxLoad(ctx, 2, 100*time.Millisecond)
	readings := n.StartReadingLoad(ctx, 1, devices, 100*time.Millisecond)
	deadline := time.Now().Add(2 * time.Minute)
	for (readings.Acked() < 40 || n.MaxHeight() < 8) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	txs.Stop()
	readings.Stop()
	_, txAcked, _ := txs.Counts()
	r.Load = fmt.Sprintf("2 tx workers, 2 devices; %d txs, %d readings", txAcked, readings.Acked())
	if readings.Acked() < 40 {
		t.Fatalf("only %d readings acknowledged", readings.Acked())
	}
	// Wait for the gateway to anchor its whole log.
	gw := n.Nodes[1]
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	var anchored uint64
	testutil.WaitFor(t, wctx, "the gateway's log anchored", func() bool {
		var rec struct {
			Record record.Anchor `json:"record"`
		}
		if err := gw.Client.Get(wctx, "/v1/anchors/"+gw.GatewayID, &rec); err != nil {
			return false
		}
		a := rec.Record
		var list struct{ Items []struct{ Index uint64 } }
		for _, d := range devices {
			if err := gw.Client.Get(wctx, "/v1/readings?limit=1000&device="+n.Key(d).ID(), &list); err != nil {
				return false
			}
			for _, it := range list.Items {
				if it.Index >= a.Size {
					return false
				}
			}
		}
		anchored = a.Size
		return true
	})
	n.stop(1)

	home := t.TempDir()
	if err := os.CopyFS(home, os.DirFS(gw.Home)); err != nil {
		t.Fatal(err)
	}
	other := "http://" + n.Nodes[0].API
	rep, code := n.verifyStore(t, home, "--compare", other)
	if code != 0 || !rep.Clean || rep.Readings.Size < anchored || rep.Readings.Anchors == 0 {
		t.Fatalf("untouched copy: exit %d, report %+v", code, rep)
	}

	// The reading log: entry 3's payload, entry 9's signature.
	db, err := pebble.Open(filepath.Join(home, "data", "gateway", "datalog"), &pebble.Options{Logger: pebblelog.New(nil, "test")})
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i uint64, at func(n int) int) {
		k := binary.BigEndian.AppendUint64([]byte{'e'}, i)
		v, closer, err := db.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		e := bytes.Clone(v)
		closer.Close()
		e[at(len(e))] ^= 0x01
		if err := db.Set(k, e, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	flip(3, func(n int) int { return n - 64 - 2 - 1 })
	flip(9, func(n int) int { return n - 1 })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The block store: a transaction, a header's app hash, a commit signature.
	bdb, err := dbm.NewGoLevelDB("blockstore", filepath.Join(home, "data"))
	if err != nil {
		t.Fatal(err)
	}
	part := func(h int64) (*cmtproto.Part, *cmtproto.Block) {
		b, err := bdb.Get(fmt.Appendf(nil, "P:%d:0", h))
		if err != nil || b == nil {
			return nil, nil
		}
		var p cmtproto.Part
		var blk cmtproto.Block
		if proto.Unmarshal(b, &p) != nil || proto.Unmarshal(p.Bytes, &blk) != nil {
			t.Fatalf("block %d does not decode", h)
		}
		return &p, &blk
	}
	save := func(key string, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := bdb.SetSync([]byte(key), b); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("untouched copy: clean; %d entries, %d anchors; blocks up to height %d", rep.Readings.Size, rep.Readings.Anchors, rep.Blocks.Height)
	// A transaction in one block, the header of another, the commit of a
	// third (the last block's commit is the seen commit: not that one).
	txH, txIdx := int64(0), 0
	for h := int64(2); txH == 0 && h < rep.Blocks.Height; h++ {
		if p, blk := part(h); p != nil && len(blk.Data.Txs) > 0 {
			txIdx = len(blk.Data.Txs) - 1
			tx := blk.Data.Txs[txIdx]
			i := bytes.Index(p.Bytes, tx)
			p.Bytes[i+len(tx)/2] ^= 0x01
			save(fmt.Sprintf("P:%d:0", h), p)
			txH = h
		}
	}
	if txH == 0 || rep.Blocks.Height < 4 {
		t.Fatalf("no block with a transaction below height %d", rep.Blocks.Height)
	}
	var others []int64
	for h := int64(2); h < rep.Blocks.Height && len(others) < 2; h++ {
		if h != txH {
			others = append(others, h)
		}
	}
	hdrH, comH := others[0], others[1]
	p, blk := part(hdrH)
	blk.Header.AppHash[5] ^= 0x04
	if p.Bytes, err = proto.Marshal(blk); err != nil {
		t.Fatal(err)
	}
	save(fmt.Sprintf("P:%d:0", hdrH), p)
	cb, err := bdb.Get(fmt.Appendf(nil, "C:%d", comH))
	if err != nil || cb == nil {
		t.Fatalf("commit %d: %v", comH, err)
	}
	var c cmtproto.Commit
	if err := proto.Unmarshal(cb, &c); err != nil {
		t.Fatal(err)
	}
	sig := -1
	for i, s := range c.Signatures {
		if len(s.Signature) > 0 {
			s.Signature[20] ^= 0x02
			c.Signatures[i] = s
			sig = i
			break
		}
	}
	save(fmt.Sprintf("C:%d", comH), &c)
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	r.Faults = "node 1 stopped; its data dir copied"
	r.Inputs = "2 log entries + 3 block records altered"

	rep, code = n.verifyStore(t, home, "--compare", other)
	var got []string
	for _, a := range rep.Alterations {
		got = append(got, a.Store+"|"+a.Item+"|"+a.What)
		t.Logf("%s %s %s: %s", a.Store, a.Item, a.What, a.Detail)
	}
	bad := rep.Readings.FirstBadAnchor
	if code != 3 || rep.Clean || bad == nil || bad.Size <= 3 {
		t.Fatalf("altered copy: exit %d, first bad anchor %+v; want exit 3 and the anchor covering entry 3", code, bad)
	}
	want := []string{
		"readings|entry 3|entry", "readings|entry 3|payload/signature",
		"readings|entry 9|entry", "readings|entry 9|payload/signature",
		fmt.Sprintf("readings|anchor at height %d|anchor", bad.Height),
		fmt.Sprintf("blocks|height %d|tx %d", txH, txIdx),
		fmt.Sprintf("blocks|height %d|app_hash", hdrH),
		fmt.Sprintf("blocks|height %d|commit_signature %d", comH, sig),
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("alterations:\n%s\nwant exactly:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
