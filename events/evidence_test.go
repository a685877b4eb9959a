package events

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// TestEvidenceEvent: the ledger's block event for committed evidence (from
// a real FinalizeBlock) becomes a validator.evidence event, which the
// "validator" family filter also selects.
func TestEvidenceEvent(t *testing.T) {
	app, err := ledger.NewApp(ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var vals []abci.ValidatorUpdate
	var keys []*identity.Key
	for i := 0; i < 2; i++ {
		k, _ := identity.GenerateKey(identity.Ed25519)
		keys = append(keys, k)
		vals = append(vals, abci.Ed25519ValidatorUpdate(k.Public().Bytes, 10))
	}
	ctx := context.Background()
	if _, err := app.InitChain(ctx, &abci.RequestInitChain{ChainId: "c", AppStateBytes: []byte("{}"), Validators: vals, InitialHeight: 1}); err != nil {
		t.Fatal(err)
	}
	addr := record.ValidatorAddress(keys[0].Public().Bytes)
	res, err := app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: 1, Misbehavior: []abci.Misbehavior{{
		Type: abci.MisbehaviorType_DUPLICATE_VOTE, Validator: abci.Validator{Address: addr, Power: 10}, Height: 1, Time: time.Unix(0, 0), TotalVotingPower: 20,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	bus := NewBus(16)
	for _, f := range effectEvents(bus, res.Events, 1, "") {
		f()
	}
	got := bus.Recent(10, "validator")
	if len(got) != 1 || got[0].Type != TypeEvidence {
		t.Fatalf("events: %+v", got)
	}
	var e EvidenceData
	if err := json.Unmarshal(got[0].Data, &e); err != nil {
		t.Fatal(err)
	}
	if e.Seq != 1 || e.Type != record.EvidenceDuplicateVote || e.Address != addr.String() || !e.Removed || e.At != 1 || e.Height != 1 ||
		e.PubKey != strings.ToUpper(hex.EncodeToString(keys[0].Public().Bytes)) {
		t.Errorf("evidence event = %+v", e)
	}
}
