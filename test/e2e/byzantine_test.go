package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/cometbft/cometbft/types"

	"github.com/thingnet/thingnet/internal/testutil"
	"github.com/thingnet/thingnet/record"
	"golang.org/x/sys/unix"
)

// TestByzantineValidator makes one of 4 validators equivocate: two
// conflicting prevotes for a committed height (its block and another), signed with its real
// consensus key (priv_validator_key.json in its home), packed as CometBFT
// DuplicateVoteEvidence with the real validator set and block time of that
// height, and submitted through another node's CometBFT RPC
// (broadcast_evidence). Invariant: the evidence is committed in a block;
// the ledger records it and removes the validator — every node's API shows
// it out of the set and CometBFT's validator set two blocks later lacks it;
// the remaining 3 keep committing txs; the same evidence submitted again
// is not committed again; the validator's own approval no longer counts,
// and approvals of the 3 others readmit it; no fork.
func TestByzantineValidator(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node processes")
	}
	start := time.Now()
	n := StartNet(t, Manifest{Name: "byzantine", Validators: 4})
	r := result{Scenario: "byzantine-validator", Faults: "validator 3 double-signs a prevote",
		Invariant: "evidence committed; signer out of the set on every node; 3 commit; readmitted by the 3 only; no fork"}
	defer func() { report(t, start, r) }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const bad = 3
	rpc := n.RPC(0)

	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	load := n.StartTxLoad(lctx, 1, 200*time.Millisecond)

	// A committed height that validator 3 helped sign, and its double vote.
	n.WaitHeight(ctx, 0, 3)
	h := n.Height(0) - 1
	ev, addr := n.DoubleSign(ctx, bad, h, rpc)
	sent := time.Now()
	res, err := rpc.BroadcastEvidence(ctx, ev)
	if err != nil {
		t.Fatalf("broadcast_evidence on node 0: %v", err)
	}
	t.Logf("node %d equivocated at height %d (address %s); evidence %X submitted to node 0", bad, h, addr, res.Hash)

	// The evidence is committed and the ledger acts on it.
	var rec record.Evidence
	testutil.WaitFor(t, ctx, "the evidence to be committed", func() bool {
		var p struct{ Items []record.Evidence }
		if err := n.Nodes[0].Client.Get(ctx, "/v1/evidence", &p); err != nil || len(p.Items) == 0 {
			return false
		}
		rec = p.Items[0]
		return true
	})
	committed := rec.Committed
	t.Logf("evidence committed in block %d, %v after submission", committed, time.Since(sent).Round(100*time.Millisecond))
	if rec.Type != record.EvidenceDuplicateVote || rec.Address.String() != addr || rec.Height != h || !rec.Removed || rec.Power != 10 || rec.TotalPower != 40 {
		t.Errorf("evidence record = %+v; want a removal of %s for height %d", rec, addr, h)
	}
	blk, err := rpc.Block(ctx, &committed)
	if err != nil {
		t.Fatal(err)
	}
	if evs := blk.Block.Evidence.Evidence; len(evs) != 1 || !bytes.Equal(evs[0].Hash(), res.Hash) {
		t.Errorf("block %d carries evidence %v; want the submitted %X", committed, evs, res.Hash)
	}

	// Every node, the equivocator too, sees it removed: the ledger's set and
	// record, and CometBFT's validator set from height committed+2 (updates
	// of block H apply at H+2).
	for i := range n.Nodes {
		n.WaitHeight(ctx, i, committed+3)
	}
	for i, nd := range n.Nodes {
		var set struct{ Items []record.Validator }
		if err := nd.Client.Get(ctx, fmt.Sprintf("/v1/validators?height=%d", committed), &set); err != nil || len(set.Items) != 3 {
			t.Errorf("node %d: the ledger's set after block %d = %+v, %v; want 3 validators", i, committed, set.Items, err)
		}
		for _, v := range set.Items {
			if record.ValidatorAddress(v.PubKey).String() == addr {
				t.Errorf("node %d: %s is still in the ledger's set", i, addr)
			}
		}
		var info record.ValidatorInfo
		p, found, err := nd.Client.ProvedRecord(ctx, fmt.Sprintf("/v1/validators/%s?height=%d", addr, committed), &info)
		if err != nil || !found || info.Power != 0 || info.Removed != committed || info.Evidence != 1 {
			t.Errorf("node %d: validator %s = %+v (found %v, %v); want power 0, removed at %d", i, addr, info, found, err, committed)
		} else if _, err := nd.Client.VerifyProof(ctx, n.ChainID, p); err != nil {
			t.Errorf("node %d: proof of validator %s: %v", i, addr, err)
		}
		for _, at := range []int64{committed + 1, committed + 2} {
			hdr, err := nd.Client.Header(ctx, at)
			if err != nil {
				t.Fatalf("node %d: header %d: %v", i, at, err)
			}
			in := false
			for _, v := range hdr.Validators {
				in = in || v.Address.String() == addr
			}
			if want := at == committed+1; in != want || len(hdr.Validators) != map[bool]int{true: 4, false: 3}[want] {
				t.Errorf("node %d: CometBFT's set at height %d has %d validators, %s in it: %v; want %v", i, at, len(hdr.Validators), addr, in, want)
			}
		}
	}
	if out, err := n.CLIAt(2, "validator", "show", addr); err != nil || !strings.Contains(out, "removed  at height "+fmt.Sprint(committed)) ||
		!strings.Contains(out, "evidence 1: duplicate_vote at height "+fmt.Sprint(h)) {
		t.Errorf("thingnet validator show %s on node 2: %v\n%s", addr, err, out)
	}

	// The same evidence again, to another node: CometBFT knows it is
	// committed (it answers without error and drops it); checked below that
	// no later block carries it and the ledger keeps one record.
	if _, err := n.RPC(1).BroadcastEvidence(ctx, ev); err != nil {
		t.Logf("the committed evidence broadcast again to node 1: %v", err)
	}

	// The remaining 3 keep committing, txs included, without validator 3.
	removedAt := committed + 2
	_, ackedBefore, _ := load.Counts()
	top := n.MaxHeight()
	for i := range n.Nodes {
		n.WaitHeight(ctx, i, top+5)
	}
	testutil.WaitFor(t, ctx, "txs committed by the 3 remaining validators", func() bool {
		_, acked, _ := load.Counts()
		return acked >= ackedBefore+3
	})
	lcancel()
	load.Stop()
	for at := committed + 1; at <= top+4; at++ {
		b, err := rpc.Block(ctx, &at)
		if err != nil {
			t.Fatalf("block %d: %v", at, err)
		}
		if len(b.Block.Evidence.Evidence) != 0 {
			t.Errorf("block %d carries evidence again: %v", at, b.Block.Evidence.Evidence)
		}
	}
	for i, nd := range n.Nodes {
		var p struct{ Items []record.Evidence }
		if err := nd.Client.Get(ctx, "/v1/evidence", &p); err != nil || len(p.Items) != 1 {
			t.Errorf("node %d: evidence records = %+v, %v; want the one", i, p.Items, err)
		}
	}
	signed := 0
	for at := removedAt; at <= top+4; at++ {
		hdr, err := n.Nodes[0].Client.Header(ctx, at)
		if err != nil {
			t.Fatalf("header %d: %v", at, err)
		}
		for _, s := range hdr.SignedHeader.Commit.Signatures {
			if s.ValidatorAddress.String() == addr {
				t.Errorf("block %d is signed by the removed validator %s", at, addr)
			}
			if s.BlockIDFlag == types.BlockIDFlagCommit {
				signed++
			}
		}
	}
	// The ledger's own set changed too: node 3's approval no longer counts.
	// It comes back only with approvals of more than 2/3 of the remaining
	// power (nodes 0, 1, 2), and then signs blocks again.
	back := n.readmit(ctx, bad, addr)
	heights := n.CheckNoFork(ctx)
	lost := load.CheckAcked(ctx, t)
	tried, acked, failed := load.Counts()
	r.Load = fmt.Sprintf("1 worker, %d txs acked", acked)
	r.Inputs = "evidence twice; 2 readmissions"
	t.Logf("byzantine: evidence for height %d committed at %d; validator %s out of CometBFT's set from %d; %d blocks since, %d commit signatures, all by the 3; readmitted by validator.update at %d; %d txs tried, %d acked (%d unacked), %d lost; no fork over %d heights",
		h, committed, addr, removedAt, top+4-removedAt+1, signed, back, tried, acked, failed, lost, heights)
}

// readmit checks that removed validator i's approval no longer counts
// (approvals of nodes 0, 1 and i refused), then readmits it with the
// approvals of nodes 0, 1, 2 and waits until it signs a block again. It
// returns the height of the validator.update.
func (n *Net) readmit(ctx context.Context, i int, addr string) int64 {
	t := n.t
	t.Helper()
	key := n.validatorKey(i)
	pub := base64.StdEncoding.EncodeToString(key.PubKey.Bytes())
	approvals := func(by ...int) []string {
		var files []string
		for _, j := range by {
			out, err := n.CLI("validator", "approve", "--home", n.Nodes[j].Home, "--chain-id", n.ChainID, "--pub-key", pub, "--power", "10", "--seq", "1")
			if err != nil {
				t.Fatalf("validator approve by node %d: %v\n%s", j, err, out)
			}
			f := filepath.Join(n.Dir, fmt.Sprintf("approval-%d.json", j))
			if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		return files
	}
	n.MustCLI("keys", "new", "readmitter")
	out, err := n.CLI(append([]string{"validator", "update", "--key", "readmitter"}, approvals(0, 1, i)...)...)
	if err == nil || !strings.Contains(out, "not a validator") {
		t.Fatalf("readmission approved by the removed validator itself: %v\n%s\nwant refused: not a validator", err, out)
	}
	out = n.MustCLI(append([]string{"validator", "update", "--key", "readmitter", "-o", "json"}, approvals(0, 1, 2)...)...)
	var res struct{ Height int64 }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Height == 0 {
		t.Fatalf("validator update: %v\n%s", err, out)
	}
	n.WaitHeight(ctx, i, res.Height)
	// CometBFT reports a height once the block is stored, a moment before
	// the ledger has committed it: ask until the node's ledger has it.
	var info record.ValidatorInfo
	testutil.WaitFor(t, ctx, fmt.Sprintf("node %d's ledger to commit height %d", i, res.Height), func() bool {
		err = n.Nodes[i].Client.Get(ctx, fmt.Sprintf("/v1/validators/%s?height=%d", addr, res.Height), &struct {
			Record *record.ValidatorInfo `json:"record"`
		}{&info})
		return err == nil || !strings.Contains(err.Error(), "above the last committed height")
	})
	if err != nil || info.Power != 10 || info.History != 3 {
		t.Errorf("readmitted validator on node %d = %+v, %v; want power 10 after 3 history entries", i, info, err)
	}
	// In CometBFT's set from res.Height+2; signing a commit soon after.
	at := res.Height + 2
	testutil.WaitFor(t, ctx, "the readmitted validator to sign a block", func() bool {
		if n.Height(0) < at+1 {
			return false
		}
		hdr, err := n.Nodes[0].Client.Header(ctx, at)
		if err != nil {
			return false
		}
		for _, s := range hdr.SignedHeader.Commit.Signatures {
			if s.ValidatorAddress.String() == addr && s.BlockIDFlag == types.BlockIDFlagCommit {
				return true
			}
		}
		at++
		return false
	})
	return res.Height
}

// validatorKey reads node i's consensus key from its home.
func (n *Net) validatorKey(i int) privval.FilePVKey {
	n.t.Helper()
	raw, err := os.ReadFile(filepath.Join(n.Nodes[i].Home, "config", "priv_validator_key.json"))
	if err != nil {
		n.t.Fatal(err)
	}
	var key privval.FilePVKey
	if err := cmtjson.Unmarshal(raw, &key); err != nil {
		n.t.Fatalf("node %d's priv_validator_key.json: %v", i, err)
	}
	return key
}

// RPC returns a CometBFT RPC client of node i, at the address of its
// thingnet.toml ([rpc] listen), dialled inside the node's network
// namespace when it has one (the RPC listens on the namespace's loopback).
func (n *Net) RPC(i int) *rpchttp.HTTP {
	n.t.Helper()
	nd := n.Nodes[i]
	var cfg struct {
		RPC struct{ Listen string } `toml:"rpc"`
	}
	if _, err := toml.DecodeFile(filepath.Join(nd.Home, "thingnet.toml"), &cfg); err != nil {
		n.t.Fatal(err)
	}
	addr, ok := strings.CutPrefix(cfg.RPC.Listen, "tcp://")
	if !ok {
		n.t.Fatalf("node %d: RPC listen address %q is not tcp://", i, cfg.RPC.Listen)
	}
	dial := (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	if nd.NS != "" {
		dial = netnsDialer(nd.NS)
	}
	c, err := rpchttp.NewWithClient("http://"+addr, "/websocket", &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: dial}})
	if err != nil {
		n.t.Fatal(err)
	}
	return c
}

// netnsDialer dials from inside the network namespace ns: a goroutine
// locks its thread, moves it into ns and opens the socket there (a socket
// stays in the namespace it was made in). The thread is never unlocked,
// so it ends with the goroutine and no other goroutine runs in ns.
func netnsDialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type dialed struct {
			c   net.Conn
			err error
		}
		ch := make(chan dialed, 1)
		go func() {
			runtime.LockOSThread()
			f, err := os.Open(filepath.Join("/run/netns", ns)) // where `ip netns add` puts it
			if errors.Is(err, os.ErrNotExist) {
				f, err = os.Open(filepath.Join("/var/run/netns", ns))
			}
			if err != nil {
				ch <- dialed{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- dialed{nil, fmt.Errorf("entering network namespace %s: %w", ns, err)}
				return
			}
			c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			ch <- dialed{c, err}
		}()
		d := <-ch
		return d.c, d.err
	}
}

// DoubleSign makes node i equivocate at height h: two prevotes of round 0,
// one for the block committed at h and one for another block id, signed with the node's consensus key, as
// DuplicateVoteEvidence built with the validator set and block time of h
// read from rpc. It returns the evidence and the validator's address.
func (n *Net) DoubleSign(ctx context.Context, i int, h int64, rpc *rpchttp.HTTP) (*types.DuplicateVoteEvidence, string) {
	t := n.t
	t.Helper()
	key := n.validatorKey(i)
	blk, err := rpc.Block(ctx, &h)
	if err != nil {
		t.Fatalf("block %d: %v", h, err)
	}
	var vals []*types.Validator
	for page, perPage := 1, 100; ; page++ {
		res, err := rpc.Validators(ctx, &h, &page, &perPage)
		if err != nil {
			t.Fatalf("validators at %d: %v", h, err)
		}
		vals = append(vals, res.Validators...)
		if len(vals) >= res.Total {
			break
		}
	}
	set := types.NewValidatorSet(vals)
	idx, val := set.GetByAddress(key.Address)
	if val == nil {
		t.Fatalf("node %d (%s) is not a validator at height %d", i, key.Address, h)
	}
	vote := func(id types.BlockID) *types.Vote {
		v := &types.Vote{Type: cmtproto.PrevoteType, Height: h, Round: 0, BlockID: id, Timestamp: blk.Block.Time,
			ValidatorAddress: key.Address, ValidatorIndex: idx}
		sig, err := key.PrivKey.Sign(types.VoteSignBytes(n.ChainID, v.ToProto()))
		if err != nil {
			t.Fatal(err)
		}
		v.Signature = sig
		return v
	}
	// One prevote for the block the chain committed at h, one for another.
	other := types.BlockID{Hash: randomHash(t), PartSetHeader: types.PartSetHeader{Total: 1, Hash: randomHash(t)}}
	ev, err := types.NewDuplicateVoteEvidence(vote(blk.BlockID), vote(other), blk.Block.Time, set)
	if err != nil {
		t.Fatal(err)
	}
	return ev, key.Address.String()
}

func randomHash(t *testing.T) []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
