package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/thingnet/thingnet/ledger"
)

func TestAccessLog(t *testing.T) {
	var buf bytes.Buffer
	s := &Server{log: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	h := s.logged(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the recorder hides http.Flusher: event streams would break")
		}
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "short and stout")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/status?x=1", nil))
	line := buf.String()
	for _, want := range []string{`"msg":"http request"`, `"method":"GET"`, `"path":"/v1/status"`, `"status":418`, `"bytes":15`} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %s lacks %s", line, want)
		}
	}
	st := s.Stats()
	if len(st.Requests) != 1 || st.Requests[0].Status != "4xx" || st.Requests[0].Route != "unmatched" || st.Requests[0].Count != 1 {
		t.Errorf("stats = %+v", st)
	}
	buf.Reset()
	s.log = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/status", nil))
	if buf.Len() != 0 {
		t.Errorf("logged at info level: %s", buf.String())
	}
}

// TestRequestStats counts by route through the real mux, and counts proofs.
func TestRequestStats(t *testing.T) {
	app, err := ledger.NewApp(ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	g, _ := json.Marshal(ledger.GenesisState{Orgs: []ledger.GenesisOrg{{ID: "acme", Admins: []string{"did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"}}}})
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
	s := New(app, nil, nil)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, p := range []string{"/v1/orgs/acme", "/v1/orgs/acme?prove=true", "/v1/orgs/ghost?prove=true", "/v1/nope", "/v1/orgs/acme"} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	res, err := http.Get(srv.URL + "/v1/orgs")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("GET /v1/orgs: no Access-Control-Allow-Origin: *")
	}
	got := map[string]uint64{}
	st := s.Stats()
	for _, c := range st.Requests {
		got[c.Route+" "+c.Status] = c.Count
	}
	if got["GET /v1/orgs 2xx"] != 1 || got["GET /v1/orgs/{id} 2xx"] != 3 || got["GET /v1/orgs/{id} 4xx"] != 1 || got["unmatched 4xx"] != 1 || st.Proofs != 2 {
		t.Errorf("stats = %v, %d proofs; want 3 ok and 1 absent org reads, 1 unmatched, 2 proofs", got, st.Proofs)
	}
}
