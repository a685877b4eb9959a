package ledger

import (
	"context"
	"errors"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// labelAll is a test migration: every device gets the label migrated=yes.
var labelAll = Upgrade{Name: "v2-labels", AppVersion: 2, Migrate: labelEveryDevice("migrated", "yes")}

// TestUpgrade: a planned upgrade stops a binary without its migration at
// the planned height, before anything of the block runs; the binary with
// it migrates the state and goes on at the new application version; the
// old binary then refuses the upgraded state.
func TestUpgrade(t *testing.T) {
	dir := t.TempDir()
	admin := mustKey(t, identity.Ed25519)
	c := newChainConfig(t, orgGenesis(admin, "acme"), Config{Dir: dir}, nil)
	dev := c.register(admin, "acme", identity.Ed25519)
	submitter := mustKey(t, identity.Ed25519)
	plan := func(seq uint64, name string, height int64, version uint64, by ...*identity.Key) *record.UpgradePlan {
		m := &record.UpgradePlan{Name: name, Height: height, AppVersion: version, Info: "release 2.0", Seq: seq}
		for _, v := range by {
			sig, _ := v.Sign(record.UpgradePlanMessage(testChain, seq, name, height, version, m.Info))
			m.Approvals = append(m.Approvals, record.Approval{Validator: v.Public().Bytes, Signature: sig})
		}
		return m
	}
	at := c.height + 20
	c.want(record.CodeUnauthorized, submitter, "", plan(1, "v2-labels", at, 2, c.vals[0], c.vals[1]))
	c.want(record.CodeInvalid, submitter, "", plan(1, "v2-labels", c.height, 2, c.vals[0], c.vals[1], c.vals[2]))
	c.want(record.CodeInvalid, submitter, "", plan(1, "v2-labels", at, 1, c.vals[0], c.vals[1], c.vals[2]))
	c.must(submitter, "", plan(1, "other", at+50, 2, c.vals[0], c.vals[1], c.vals[2]))
	c.want(record.CodeConflict, submitter, "", plan(2, "v2-labels", at, 2, c.vals[0], c.vals[1], c.vals[2]))
	c.must(submitter, "", plan(2, "other", 0, 0, c.vals[0], c.vals[1], c.vals[2])) // cancelled
	c.must(submitter, "", plan(3, "v2-labels", at, 2, c.vals[0], c.vals[1], c.vals[2]))
	if p, _ := c.view().UpgradePlan(); p == nil || p.Name != "v2-labels" || p.Height != at {
		t.Fatalf("pending plan: %+v", p)
	}
	for c.height < at-1 {
		c.block()
	}
	// The block at the planned height: refused, and the node told why.
	_, err := c.app.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: at})
	if !errors.Is(err, ErrUpgradeNeeded) || !strings.Contains(err.Error(), `UPGRADE "v2-labels"`) || !strings.Contains(err.Error(), "release 2.0") {
		t.Fatalf("the block at the upgrade height without the migration: %v; want ErrUpgradeNeeded naming it", err)
	}
	select {
	case herr := <-c.app.Halted():
		if !errors.Is(herr, ErrUpgradeNeeded) {
			t.Errorf("halted with %v", herr)
		}
	default:
		t.Error("the app did not signal the node to stop")
	}
	c.app.Close()

	// The new binary: the migration runs at the start of the block.
	app, err := NewApp(Config{Dir: dir, Upgrades: []Upgrade{labelAll}})
	if err != nil {
		t.Fatal(err)
	}
	c.app = app
	t.Cleanup(func() { app.Close() })
	res, err := app.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: at})
	if err != nil {
		t.Fatal(err)
	}
	if res.ConsensusParamUpdates == nil || res.ConsensusParamUpdates.Version.App != 2 {
		t.Errorf("consensus params after the upgrade: %v; want app version 2", res.ConsensusParamUpdates)
	}
	if _, err := app.Commit(context.Background(), &abci.RequestCommit{}); err != nil {
		t.Fatal(err)
	}
	c.height = at
	st := c.view()
	if v, _ := st.AppVersion(); v != 2 {
		t.Errorf("app version %d; want 2", v)
	}
	if d, _ := st.Device(dev.ID()); d.Labels["migrated"] != "yes" {
		t.Errorf("device after the migration: %+v", d)
	}
	if p, _ := st.UpgradePlan(); p != nil {
		t.Errorf("plan still pending: %+v", p)
	}
	if done, err := st.UpgradeDone("v2-labels"); err != nil || done.Height != at {
		t.Errorf("upgrade record: %+v, %v", done, err)
	}
	if info, _ := app.Info(context.Background(), &abci.RequestInfo{}); info.AppVersion != 2 {
		t.Errorf("Info app version %d; want 2", info.AppVersion)
	}
	c.register(admin, "acme", identity.Ed25519) // and goes on
	c.want(record.CodeConflict, submitter, "", plan(4, "v2-labels", c.height+5, 3, c.vals[0], c.vals[1], c.vals[2]))
	app.Close()

	// The old binary refuses the upgraded state.
	if _, err := NewApp(Config{Dir: dir}); !errors.Is(err, ErrUpgradeNeeded) || !strings.Contains(err.Error(), "application version 2") {
		t.Errorf("the old binary on the upgraded state: %v; want ErrUpgradeNeeded", err)
	}
}
