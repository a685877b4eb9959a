package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/chain"
	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/node"
	"github.com/thingnet/thingnet/proof"
	"github.com/thingnet/thingnet/record"
)

// TestReadingsVerifyAfterArchiving: a reading far behind both horizons —
// its blocks pruned (retain_blocks 8) and its log entry archived (a
// segment published through the file service, pinned by the other node,
// its bytes dropped at the gateway) — verifies end to end through the
// API and the SDK (client + proof), the CLI (readings verify, verify
// reading with a light client), and verify store checks the archived
// store, fetching the segment from the node that pins it.
func TestReadingsVerifyAfterArchiving(t *testing.T) {
	const chainID = "archive"
	ctx := testutil.Context(t, 4*time.Minute)
	admin := testutil.Key(t, identity.Ed25519)
	gwKeys := []*identity.Key{testutil.Key(t, identity.Ed25519), testutil.Key(t, identity.Ed25519)}
	t.Setenv("THINGNET_PASSPHRASE", "")
	ks := t.TempDir()
	if _, err := (identity.Keystore{Dir: ks}).Save("demo-admin", admin, nil); err != nil {
		t.Fatal(err)
	}
	gen := ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: "demo", Admins: []string{admin.ID()}}}}
	for _, k := range gwKeys {
		gen.Devices = append(gen.Devices, ledger.GenesisDevice{ID: k.ID(), Org: "demo", Class: record.ClassGateway})
	}
	st, _ := json.Marshal(gen)
	base, err := chain.FreePortBase(2)
	if err != nil {
		t.Fatal(err)
	}
	cfgs := make([]node.Config, 2)
	dir := filepath.Join(t.TempDir(), "net")
	var vals []chain.GenesisValidator
	for i := range cfgs {
		c := node.DevConfig(i, base)
		c.Consensus.FastBlocks, c.Consensus.TimeoutCommit = true, node.Duration{}
		c.Ledger.KeepVersions, c.Ledger.RetainBlocks = 10, 8
		c.Gateway.AnchorInterval = node.Duration{Duration: 200 * time.Millisecond}
		c.Gateway.Archive = node.ArchiveConfig{Enabled: i == 0, SegmentEntries: 4, MinPins: 1, Interval: node.Duration{Duration: 200 * time.Millisecond}}
		cfgs[i] = c
		id, err := chain.InitHome(chain.Config{Home: filepath.Join(dir, fmt.Sprintf("node%d", i)), Moniker: c.Moniker, P2PListen: c.P2P.Listen, RPCListen: c.RPC.Listen})
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, chain.GenesisValidator{Name: c.Moniker, PubKey: id.ValidatorPubKey, Power: 10})
	}
	// Evidence expires after 5 blocks and a second, so that retention
	// is not held up.
	if err := chain.WriteGenesis(filepath.Join(dir, "node0"), chain.Genesis{ChainID: chainID, Validators: vals, AppState: st,
		EvidenceMaxAgeBlocks: 5, EvidenceMaxAge: time.Second}); err != nil {
		t.Fatal(err)
	}
	net, err := node.StartNet(node.NetConfig{Dir: dir, ChainID: chainID, AppState: st, Nodes: cfgs,
		Options: func(i int) []node.Option { return []node.Option{node.WithGatewayKey(gwKeys[i]), node.WithNoSync()} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Stop() })
	if err := net.WaitForHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	apiURL := func(i int) string { return "http://" + net.Node(i).APIAddr() }
	node0 := apiURL(0)
	run := func(args ...string) string {
		t.Helper()
		out, err := cli(t, node0, ks, args...)
		if err != nil {
			t.Fatalf("thingnet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	run("keys", "new", "old")
	run("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", "old")
	for seq := 1; seq <= 5; seq++ {
		run("readings", "send", "--key", "old", "--seq", strconv.Itoa(seq), "--type", "temperature/celsius", "--value", strconv.Itoa(18+seq))
	}
	gw := net.Node(0).Gateway()
	testutil.WaitFor(t, ctx, "entries 0..3 archived and dropped at gateway 0", func() bool {
		_, err := gw.Log().Entry(1)
		return errors.Is(err, datalog.ErrArchived)
	})
	p0, err := client.New(node0).WaitReadingProof(ctx, 1, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, ctx, "the blocks up to the reading's anchor pruned on both nodes", func() bool {
		for i := range net.Size() {
			if earliest(t, ctx, "http://"+strings.TrimPrefix(net.Config(i).RPC.Listen, "tcp://")) <= p0.Anchor.Height {
				return false
			}
		}
		return true
	})

	// API and SDK: the device's organisation reads it, another node checks it.
	c0 := client.New(node0).WithIdentity(&client.Identity{Key: admin, ChainID: chainID})
	p, err := c0.Reading(ctx, 1)
	if err != nil || p.Err() != nil {
		t.Fatalf("GET archived reading 1: %v", err)
	}
	v, err := client.New(apiURL(1)).VerifyReading(ctx, chainID, p)
	if err != nil {
		t.Fatalf("VerifyReading(archived 1): %v", err)
	}
	if rs := v.Envelope.Readings; len(rs) != 1 || rs[0].Value == nil || *rs[0].Value != 20 {
		t.Errorf("verified readings = %+v; want the value 20", rs)
	}
	// Anonymous: the public part only, still proved.
	if p, err := client.New(node0).Reading(ctx, 1); err != nil || p.Withheld == nil || len(p.Inclusion) == 0 {
		t.Errorf("anonymous GET archived reading 1 = %+v, %v; want withheld with its proofs", p, err)
	}

	// CLI: through the other node, and with a light client trusting a
	// recent block (the early ones are pruned).
	if out := run("readings", "verify", "1", "--via", apiURL(1), "--identity", "demo-admin"); !strings.Contains(out, "verified: signed by the device's key") || !strings.Contains(out, "20 temperature/celsius") {
		t.Errorf("readings verify of an archived reading = %q", out)
	}
	var blk struct{ Hash string }
	h := net.Node(1).App().Height() - 1
	if err := json.Unmarshal([]byte(run("tx", "block", strconv.FormatInt(h, 10), "-o", "json")), &blk); err != nil {
		t.Fatal(err)
	}
	if out := run("verify", "reading", "1", "--via", apiURL(1), "--trust", strconv.FormatInt(h, 10)+":"+blk.Hash, "--identity", "demo-admin"); !strings.Contains(out, "verified:") {
		t.Errorf("verify reading --trust of an archived reading = %q", out)
	}

	if out := run("archive", "status"); !strings.Contains(out, "entries below 4 dropped here; the ledger records segments up to 4") || !strings.Contains(out, "archiving:   true") {
		t.Errorf("archive status = %q", out)
	}

	// The file service serves a segment to anyone who names it: it holds
	// no envelope in the clear (it is sealed to the gateway's key).
	view, err := net.Node(1).App().View(0)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := view.LogArchiveCovering(gwKeys[0].ID(), 1)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := (&files.Client{Base: apiURL(1)}).Fetch(ctx, rec.CID, rec.Size)
	if err != nil || bytes.Contains(raw, p.Envelope) || bytes.Contains(raw, []byte("temperature/celsius")) {
		t.Errorf("GET /v1/content/%s = %d bytes, %v; want the segment, sealed", rec.CID, len(raw), err)
	}

	// An erasure after archiving: the gateway re-cuts the segment without
	// the erased values, node 1 pins the new one and drops its pin of the
	// old (the ledger lists no pin of it any more); the erased reading
	// answers erased, through the new segment's range.
	run("data", "erase", "--key", "demo-admin", "--org", "demo", "--device", "old", "--from", "0",
		"--to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--reason", "subject's request")
	var recut *record.LogArchive
	testutil.WaitFor(t, ctx, "the segment re-cut and the old one unpinned on node 1", func() bool {
		view, err := net.Node(1).App().View(0)
		if err != nil {
			return false
		}
		recut, err = view.LogArchiveCovering(gwKeys[0].ID(), 1)
		if err != nil || recut.CID == rec.CID {
			return false
		}
		oldPins, err1 := view.FilePins(rec.CID)
		newPins, err2 := view.FilePins(recut.CID)
		return err1 == nil && err2 == nil && len(oldPins) == 0 && len(newPins) > 0
	})
	if len(recut.Replaced) != 1 || recut.Replaced[0] != rec.CID {
		t.Errorf("re-cut record %+v; want it to replace %s", recut, rec.CID)
	}
	if p, err := c0.Reading(ctx, 1); err != nil || p.Withheld == nil || p.Withheld.Code != proof.CodeErased || p.Envelope != nil {
		t.Errorf("GET erased archived reading 1 = %+v, %v; want withheld, erased", p, err)
	}
	testutil.WaitFor(t, ctx, "archive status to count the re-cut", func() bool {
		return strings.Contains(run("archive", "status"), "1 segments re-cut after erasures")
	})

	// verify store: node 0 stopped, its segment fetched from node 1.
	if err := net.StopNode(0); err != nil {
		t.Fatal(err)
	}
	home := net.Home(0)
	// Segments are sealed to the gateway's key: without it, their digests only.
	out, err := cli(t, apiURL(1), ks, "verify", "store", "--home", home, "--gateway", gwKeys[0].ID(), "--segments", apiURL(1))
	if err != nil || !strings.Contains(out, ": digest_checked") || !strings.Contains(out, "sealed to the gateway's key") {
		t.Errorf("verify store without the gateway key: %v\n%s", err, out)
	}
	// With the key the home's thingnet.toml names, they are opened and checked.
	if _, err := (identity.Keystore{Dir: filepath.Join(home, "keys")}).Save(cfgs[0].Gateway.Key, gwKeys[0], nil); err != nil {
		t.Fatal(err)
	}
	if err := node.WriteConfig(home, cfgs[0]); err != nil {
		t.Fatal(err)
	}
	out, err = cli(t, apiURL(1), ks, "verify", "store", "--home", home, "--gateway", gwKeys[0].ID(), "--segments", apiURL(1))
	if err != nil || !strings.Contains(out, "archived: entries 0..3 in segment") || !strings.Contains(out, ": checked") || !strings.Contains(out, "clean: nothing altered") {
		t.Errorf("verify store of an archived store: %v\n%s", err, out)
	}

	// A lost segment (no node at the URL serves it) is an alteration, never skipped.
	out, err = cli(t, apiURL(1), ks, "verify", "store", "--home", home, "--gateway", gwKeys[0].ID(), "--segments", "http://127.0.0.1:1")
	var ae alteredError
	if !errors.As(err, &ae) || !strings.Contains(out, "no node served it") {
		t.Errorf("verify store with the segment lost: err %v; want an alteration\n%s", err, out)
	}
	out, err = cli(t, apiURL(1), ks, "verify", "store", "--home", home, "--gateway", gwKeys[0].ID())
	if err != nil || !strings.Contains(out, "not_fetched") || !strings.Contains(out, "skipped:  archived segments") {
		t.Errorf("verify store without --segments: %v\n%s", err, out)
	}
}

// earliest is the earliest block a node's CometBFT RPC still holds.
func earliest(t *testing.T, ctx context.Context, rpc string) int64 {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(rpc, "/")+"/status", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	var st struct {
		Result struct {
			SyncInfo struct {
				Earliest string `json:"earliest_block_height"`
			} `json:"sync_info"`
		} `json:"result"`
	}
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return 0
	}
	h, _ := strconv.ParseInt(st.Result.SyncInfo.Earliest, 10, 64)
	return h
}
