package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// newTestServer serves the API over a ledger with one committed block and
// no consensus behind it: enough for reads and for request validation.
func newTestServer(t *testing.T) (*httptest.Server, *identity.Key) {
	t.Helper()
	app, err := ledger.NewApp(ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	admin, _ := identity.GenerateKey(identity.Ed25519)
	g, _ := json.Marshal(ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: "acme", Admins: []string{admin.ID()}}}})
	ctx := context.Background()
	if _, err := app.InitChain(ctx, &abci.RequestInitChain{ChainId: "c", AppStateBytes: g, InitialHeight: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Commit(ctx, &abci.RequestCommit{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(app, nil, nil).Handler())
	t.Cleanup(srv.Close)
	return srv, admin
}

func TestErrors(t *testing.T) {
	srv, _ := newTestServer(t)
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/v1/nope", "", 404, "not_found"},
		{"GET", "/v1/orgs/ghost", "", 404, "not_found"},
		{"GET", "/v1/devices/did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", "", 404, "not_found"},
		{"GET", "/v1/devices?limit=0", "", 400, "bad_request"},
		{"GET", "/v1/devices?limit=abc", "", 400, "bad_request"},
		{"GET", "/v1/grants/xyz", "", 400, "bad_request"},
		{"GET", "/v1/grants?after=-1", "", 400, "bad_request"},
		{"GET", "/v1/orgs/acme?height=99", "", 400, "bad_request"},
		{"GET", "/v1/orgs/acme?height=-1", "", 400, "bad_request"},
		{"GET", "/v1/txs/zz", "", 400, "bad_request"},
		{"GET", "/v1/proofs?key=xyz", "", 400, "bad_request"},
		{"GET", "/v1/proofs", "", 400, "bad_request"},
		{"GET", "/v1/proofs?key=6f2f61&key=zz", "", 400, "bad_request"},
		{"GET", "/v1/proofs?" + strings.Repeat("key=6f2f61&", 33), "", 400, "bad_request"},
		{"POST", "/v1/txs", "{not json", 400, "bad_request"},
		{"POST", "/v1/txs", `{"tx": ""}`, 400, "bad_request"},
		{"POST", "/v1/txs?wait=forever", `{"tx": "AAAA"}`, 400, "bad_request"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var e client.ErrorBody
			if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Errorf("status %d body %s; want %d with code %q and a message", resp.StatusCode, b, tc.status, tc.code)
			}
		})
	}
}

func TestReadsAndProofs(t *testing.T) {
	srv, admin := newTestServer(t)
	c := client.New(srv.URL)
	ctx := context.Background()
	var org record.Org
	p, found, err := c.ProvedRecord(ctx, "/v1/orgs/acme", &org)
	if err != nil || !found || org.Admins[0] != admin.ID() {
		t.Fatalf("ProvedRecord(acme) = %+v, %v, %v", org, found, err)
	}
	if err := record.VerifyProof(p.Root, p.Key, p.Value, p.Proof); err != nil {
		t.Errorf("proof of acme: %v", err)
	}
	p, found, err = c.ProvedRecord(ctx, "/v1/orgs/ghost", nil)
	if err != nil || found || p.Value != nil {
		t.Fatalf("ProvedRecord(ghost) = %v, %v, %v; want an absence proof", p, found, err)
	}
	if err := record.VerifyProof(p.Root, p.Key, nil, p.Proof); err != nil {
		t.Errorf("absence proof of ghost: %v", err)
	}
	var page struct {
		Items []record.Org `json:"items"`
	}
	if err := c.Get(ctx, "/v1/orgs", &page); err != nil || len(page.Items) != 1 {
		t.Errorf("orgs = %+v, %v", page, err)
	}
	n, err := c.NextNonce(ctx, admin.ID())
	if err != nil || n != 1 {
		t.Errorf("NextNonce = %d, %v; want 1", n, err)
	}
}
