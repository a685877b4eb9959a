package chain

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	dbm "github.com/cometbft/cometbft-db"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cosmos/gogoproto/proto"
)

// checkedNet runs a one-validator net, commits three txs and stops; it
// returns the node's data directory and the heights of the txs.
func checkedNet(t *testing.T) (string, []int64) {
	t.Helper()
	dir := t.TempDir()
	net, err := StartLocalNet(LocalNetConfig{Dir: dir, Validators: 1, FastBlocks: true, NewApp: persistentKVStore}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var heights []int64
	for i := range 3 {
		heights = append(heights, commitTx(t, net.Node(0), fmt.Sprintf("k%d", i), fmt.Sprintf("value-%d", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := net.WaitForHeight(ctx, heights[2]+3); err != nil {
		t.Fatal(err)
	}
	if err := net.Stop(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "node0", "data"), heights
}

func editDB(t *testing.T, dataDir, name string, f func(db dbm.DB)) {
	t.Helper()
	db, err := dbm.NewGoLevelDB(name, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	f(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func getProto(t *testing.T, db dbm.DB, key string, m proto.Message) {
	t.Helper()
	b, err := db.Get([]byte(key))
	if err != nil || b == nil {
		t.Fatalf("%s: %v (missing: %v)", key, err, b == nil)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
}

func setProto(t *testing.T, db dbm.DB, key string, m proto.Message) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetSync([]byte(key), b); err != nil {
		t.Fatal(err)
	}
}

// TestCheckBlocks flips chosen bytes in a real node's block store — a
// transaction, a header field, a commit signature — and checks that each
// is reported, exactly, and that the untouched store reports nothing.
func TestCheckBlocks(t *testing.T) {
	data, heights := checkedNet(t)
	rep, err := CheckBlocks(BlockCheckConfig{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 || rep.Height < heights[2]+3 || rep.ChainID == "" {
		t.Fatalf("untouched store: %+v", rep)
	}

	txH, headerH, commitH := heights[0], heights[1], heights[2]+1
	editDB(t, data, "blockstore", func(db dbm.DB) {
		// A transaction's value: "value-0" becomes "valuf-0".
		var part cmtproto.Part
		getProto(t, db, fmt.Sprintf("P:%d:0", txH), &part)
		i := bytes.Index(part.Bytes, []byte("value-0"))
		if i < 0 {
			t.Fatal("tx not found in the block's part")
		}
		part.Bytes[i+4] ^= 0x03
		setProto(t, db, fmt.Sprintf("P:%d:0", txH), &part)

		// A header field: the app hash of another block.
		getProto(t, db, fmt.Sprintf("P:%d:0", headerH), &part)
		var b cmtproto.Block
		if err := proto.Unmarshal(part.Bytes, &b); err != nil {
			t.Fatal(err)
		}
		b.Header.AppHash[0] ^= 0x80
		if part.Bytes, err = proto.Marshal(&b); err != nil {
			t.Fatal(err)
		}
		setProto(t, db, fmt.Sprintf("P:%d:0", headerH), &part)

		// A commit signature.
		var c cmtproto.Commit
		getProto(t, db, fmt.Sprintf("C:%d", commitH), &c)
		c.Signatures[0].Signature[10] ^= 0x01
		setProto(t, db, fmt.Sprintf("C:%d", commitH), &c)
	})
	rep, err = CheckBlocks(BlockCheckConfig{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range rep.Findings {
		got = append(got, fmt.Sprintf("%d %s %d", f.Height, f.Field, f.Index))
		t.Logf("height %d %s[%d]: %s", f.Height, f.Field, f.Index, f.Detail)
	}
	want := []string{fmt.Sprintf("%d tx 0", txH), fmt.Sprintf("%d app_hash 0", headerH), fmt.Sprintf("%d commit_signature 0", commitH)}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("findings %v; want exactly %v", got, want)
	}
}
