package api

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// TestValidatorRoutes: a 3-validator ledger commits evidence against one
// validator; the API serves its record, history and the evidence, with
// proofs.
func TestValidatorRoutes(t *testing.T) {
	app, err := ledger.NewApp(ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	var keys []*identity.Key
	var vals []abci.ValidatorUpdate
	for i := 0; i < 3; i++ {
		k, _ := identity.GenerateKey(identity.Ed25519)
		keys = append(keys, k)
		vals = append(vals, abci.Ed25519ValidatorUpdate(k.Public().Bytes, 10))
	}
	ctx := context.Background()
	g, _ := json.Marshal(ledger.GenesisState{})
	if _, err := app.InitChain(ctx, &abci.RequestInitChain{ChainId: "c", AppStateBytes: g, Validators: vals, InitialHeight: 1}); err != nil {
		t.Fatal(err)
	}
	bad := keys[1].Public().Bytes
	addr := record.ValidatorAddress(bad)
	for h, mbs := range [][]abci.Misbehavior{nil, {{Type: abci.MisbehaviorType_DUPLICATE_VOTE,
		Validator: abci.Validator{Address: addr, Power: 10}, Height: 1, Time: time.Unix(1764093600, 0), TotalVotingPower: 30}}} {
		if _, err := app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: int64(h + 1), Misbehavior: mbs}); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Commit(ctx, &abci.RequestCommit{}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(New(app, nil, nil).Handler())
	t.Cleanup(srv.Close)
	c := client.New(srv.URL)

	// The same validator under each of its names.
	for _, id := range []string{addr.String(), hex.EncodeToString(addr), hex.EncodeToString(bad),
		base64.RawURLEncoding.EncodeToString(bad), base64.URLEncoding.EncodeToString(bad)} {
		var info record.ValidatorInfo
		p, found, err := c.ProvedRecord(ctx, "/v1/validators/"+id, &info)
		if err != nil || !found {
			t.Fatalf("validator %s: found %v, %v", id, found, err)
		}
		if err := record.VerifyProof(p.Root, p.Key, p.Value, p.Proof); err != nil {
			t.Errorf("proof of validator %s: %v", id, err)
		}
		if info.Power != 0 || info.Evidence != 1 || info.Removed != 2 || info.History != 2 {
			t.Errorf("validator %s = %+v; want removed at 2 with 1 evidence", id, info)
		}
	}
	var hist struct {
		Items []record.ValidatorEvent `json:"items"`
		Next  string                  `json:"next"`
	}
	if err := c.Get(ctx, "/v1/validators/"+addr.String()+"/history?limit=1", &hist); err != nil || len(hist.Items) != 1 || hist.Items[0].Kind != record.ValEventGenesis || hist.Next != "1" {
		t.Fatalf("history page 1 = %+v, %v", hist, err)
	}
	if err := c.Get(ctx, "/v1/validators/"+addr.String()+"/history?after=1", &hist); err != nil || len(hist.Items) != 1 || hist.Items[0].Kind != record.ValEventEvidence || hist.Items[0].Evidence != 1 {
		t.Fatalf("history after 1 = %+v, %v", hist, err)
	}
	var evs struct {
		Items []record.Evidence `json:"items"`
	}
	if err := c.Get(ctx, "/v1/evidence", &evs); err != nil || len(evs.Items) != 1 || evs.Items[0].Type != record.EvidenceDuplicateVote ||
		!evs.Items[0].Removed || evs.Items[0].Address.String() != addr.String() || evs.Items[0].Time != "2025-11-25T18:00:00Z" {
		t.Fatalf("evidence list = %+v, %v", evs, err)
	}
	if err := c.Get(ctx, "/v1/evidence?after=1", &evs); err != nil || len(evs.Items) != 0 {
		t.Errorf("evidence after 1 = %+v, %v; want none", evs, err)
	}
	var ev record.Evidence
	p, found, err := c.ProvedRecord(ctx, "/v1/evidence/1", &ev)
	if err != nil || !found || ev.Committed != 2 {
		t.Fatalf("evidence 1 = %+v, %v, %v", ev, found, err)
	}
	if err := record.VerifyProof(p.Root, p.Key, p.Value, p.Proof); err != nil {
		t.Errorf("proof of evidence 1: %v", err)
	}
	// Absent: an absence proof with the 404.
	p, found, err = c.ProvedRecord(ctx, "/v1/evidence/2", nil)
	if err != nil || found {
		t.Fatalf("evidence 2: found %v, %v; want an absence proof", found, err)
	}
	if err := record.VerifyProof(p.Root, p.Key, nil, p.Proof); err != nil {
		t.Errorf("absence proof of evidence 2: %v", err)
	}
	// The set as listed lost the removed validator; a kept one has no evidence.
	var set struct {
		Items []record.Validator `json:"items"`
	}
	if err := c.Get(ctx, "/v1/validators", &set); err != nil || len(set.Items) != 2 {
		t.Errorf("validator set = %+v, %v; want 2", set, err)
	}
	var good record.ValidatorInfo
	if err := c.Get(ctx, "/v1/validators/"+hex.EncodeToString(keys[0].Public().Bytes), &struct {
		Record *record.ValidatorInfo `json:"record"`
	}{&good}); err != nil || good.Power != 10 || good.Evidence != 0 {
		t.Errorf("kept validator = %+v, %v", good, err)
	}

	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/v1/validators/x", 404},
		{"/v1/validators/" + hex.EncodeToString(make([]byte, 20)), 404}, // well-formed, unknown
		{"/v1/validators/" + hex.EncodeToString(make([]byte, 16)), 404}, // neither an address nor a key
		{"/v1/validators/x/history", 404},
		{"/v1/validators/" + addr.String() + "/history?after=x", 400},
		{"/v1/validators/" + addr.String() + "/history?limit=0", 400},
		{"/v1/evidence?after=-1", 400},
		{"/v1/evidence?limit=5000", 400},
		{"/v1/evidence/0", 404},
		{"/v1/evidence/abc", 404},
		{"/v1/evidence/1?height=99", 400},
	} {
		err := c.Get(ctx, tc.path, nil)
		var e *client.Error
		if !errors.As(err, &e) || e.Status != tc.status || e.Message == "" {
			t.Errorf("GET %s: %v; want %d with a message", tc.path, err, tc.status)
		}
	}
}

func FuzzParseValidatorID(f *testing.F) {
	for _, s := range []string{"", "x", "00112233445566778899AABBCCDDEEFF00112233", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addr, err := ParseValidatorID(s)
		if err == nil && len(addr) != 20 {
			t.Fatalf("ParseValidatorID(%q) = %x: not a 20-byte address", s, addr)
		}
	})
}
