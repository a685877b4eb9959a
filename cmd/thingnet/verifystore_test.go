package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	dbm "github.com/cometbft/cometbft-db"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cosmos/gogoproto/proto"

	"github.com/thingnet/thingnet/audit"
	"github.com/thingnet/thingnet/devnet"
	"github.com/thingnet/thingnet/internal/pebblelog"
	"github.com/thingnet/thingnet/internal/testutil"
)

// TestVerifyStore runs a devnet, stores readings, stops it, and checks a
// copy of node 0's home: clean as it is; then with chosen bytes flipped in
// its reading log (an entry's payload, another's signature, an entry
// removed) and block store (a block's tx, a header field, a commit
// signature), each is reported, exactly, and the command exits with
// status 3.
func TestVerifyStore(t *testing.T) {
	d, node, ks := testDevnet(t, 1)
	run := func(args ...string) string { return mustCLI(t, node, ks, args...) }
	run("keys", "new", "sensor-t")
	var reg struct{ Height int64 }
	if err := json.Unmarshal([]byte(run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "sensor-t", "-o", "json")), &reg); err != nil || reg.Height == 0 {
		t.Fatalf("register: height %d, %v", reg.Height, err)
	}
	for seq := 1; seq <= 6; seq++ {
		run("readings", "send", "--key", "sensor-t", "--seq", strconv.Itoa(seq), "--value", strconv.Itoa(20+seq))
	}
	// The gateway answers a reading before an anchor covers it ("proof: none").
	testutil.WaitFor(t, testutil.Context(t, time.Minute), "entry 5 to be anchored", func() bool {
		out, err := cli(t, node, ks, "readings", "get", "5", "--identity", "demo-admin")
		return err == nil && strings.Contains(out, "anchor:  log size")
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.WaitForHeight(ctx, d.App(0).Height()+2); err != nil {
		t.Fatal(err)
	}
	info, err := devnet.Keystore(d.Home()).Info(devnet.GatewayKey(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := os.CopyFS(home, os.DirFS(filepath.Join(d.Home(), "nodes", "node0"))); err != nil {
		t.Fatal(err)
	}
	verify := func() (*audit.Report, error) {
		t.Helper()
		out, err := cli(t, node, ks, "verify", "store", "--home", home, "--gateway", info.ID, "-o", "json")
		var rep audit.Report
		if jerr := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &rep); jerr != nil {
			t.Fatalf("verify store: %v\n%s", jerr, out)
		}
		return &rep, err
	}
	rep, err := verify()
	if err != nil || !rep.Clean || rep.Readings == nil || rep.Readings.Size != 6 || rep.Readings.Anchors == 0 || rep.Blocks.AppHashesMet == 0 || len(rep.Skipped) != 0 {
		t.Fatalf("untouched copy: %v; report %+v", err, rep)
	}
	text, err := cli(t, node, ks, "verify", "store", "--home", home, "--gateway", info.ID)
	if err != nil || !strings.Contains(text, "clean: nothing altered") {
		t.Fatalf("untouched copy, text: %v\n%s", err, text)
	}

	// The reading log, as someone with write access to the disk would.
	db, err := pebble.Open(filepath.Join(home, "data", "gateway", "datalog"), &pebble.Options{Logger: pebblelog.New(nil, "test"), ErrorIfNotExists: true})
	if err != nil {
		t.Fatal(err)
	}
	key := func(i uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'e'}, i) }
	flip := func(i uint64, at func(n int) int) {
		v, closer, err := db.Get(key(i))
		if err != nil {
			t.Fatal(err)
		}
		e := bytes.Clone(v)
		closer.Close()
		e[at(len(e))] ^= 0x01
		if err := db.Set(key(i), e, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	flip(2, func(n int) int { return n - 64 - 2 - 1 }) // the payload's last byte (the value)
	flip(4, func(n int) int { return n - 1 })          // the signature's last byte
	if err := db.Delete(key(5), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The block store.
	bdb, err := dbm.NewGoLevelDB("blockstore", filepath.Join(home, "data"))
	if err != nil {
		t.Fatal(err)
	}
	getPart := func(h int64) (*cmtproto.Part, *cmtproto.Block) {
		b, err := bdb.Get(fmt.Appendf(nil, "P:%d:0", h))
		if err != nil || b == nil {
			t.Fatalf("part of block %d: %v", h, err)
		}
		var p cmtproto.Part
		var blk cmtproto.Block
		if err := proto.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(p.Bytes, &blk); err != nil {
			t.Fatal(err)
		}
		return &p, &blk
	}
	setPart := func(h int64, p *cmtproto.Part) {
		b, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := bdb.SetSync(fmt.Appendf(nil, "P:%d:0", h), b); err != nil {
			t.Fatal(err)
		}
	}
	// A transaction: the registration, one byte of it.
	txH := reg.Height
	p, blk := getPart(txH)
	txIdx := -1
	for k, tx := range blk.Data.Txs {
		if i := bytes.Index(p.Bytes, tx); i >= 0 && bytes.Contains(tx, []byte("register")) {
			p.Bytes[i+len(tx)/2] ^= 0x01
			txIdx = k
			break
		}
	}
	if txIdx < 0 {
		t.Fatalf("the registration is not in block %d", txH)
	}
	setPart(txH, p)
	// A header field: the app hash of the next block.
	hdrH := txH + 1
	p, blk = getPart(hdrH)
	blk.Header.AppHash[3] ^= 0x10
	if p.Bytes, err = proto.Marshal(blk); err != nil {
		t.Fatal(err)
	}
	setPart(hdrH, p)
	// A commit signature.
	comH := txH + 2
	cb, err := bdb.Get(fmt.Appendf(nil, "C:%d", comH))
	if err != nil || cb == nil {
		t.Fatalf("commit %d: %v", comH, err)
	}
	var c cmtproto.Commit
	if err := proto.Unmarshal(cb, &c); err != nil {
		t.Fatal(err)
	}
	c.Signatures[0].Signature[7] ^= 0x40
	if cb, err = proto.Marshal(&c); err != nil {
		t.Fatal(err)
	}
	if err := bdb.SetSync(fmt.Appendf(nil, "C:%d", comH), cb); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}

	rep, err = verify()
	var coded interface{ ExitCode() int }
	if !errors.As(err, &coded) || coded.ExitCode() != 3 || rep.Clean {
		t.Fatalf("altered copy: err %v; want exit status 3", err)
	}
	var got []string
	for _, a := range rep.Alterations {
		got = append(got, a.Store+"|"+a.Item+"|"+a.What)
		t.Logf("%s %s %s: %s", a.Store, a.Item, a.What, a.Detail)
	}
	bad := rep.Readings.FirstBadAnchor
	if bad == nil || bad.Size <= 2 {
		t.Fatalf("first bad anchor %+v; want the first covering entry 2", bad)
	}
	want := []string{
		"readings|entry 2|entry", "readings|entry 2|payload/signature",
		"readings|entry 4|entry", "readings|entry 4|payload/signature",
		"readings|entry 5|missing",
		fmt.Sprintf("readings|anchor at height %d|anchor", bad.Height),
		fmt.Sprintf("blocks|height %d|tx %d", txH, txIdx),
		fmt.Sprintf("blocks|height %d|app_hash", hdrH),
		fmt.Sprintf("blocks|height %d|commit_signature 0", comH),
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("alterations:\n%s\nwant exactly:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	text, _ = cli(t, node, ks, "verify", "store", "--home", home, "--gateway", info.ID)
	if !strings.Contains(text, "STORE") || !strings.Contains(text, "first bad anchor") || !strings.Contains(text, "commit_signature 0") {
		t.Errorf("text report:\n%s", text)
	}
}
