package api

import (
	"github.com/thingnet/thingnet/fleet"

	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	rpcclient "github.com/cometbft/cometbft/rpc/client"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// Server is a node's HTTP API.
type Server struct {
	app   *ledger.App
	comet rpcclient.Client
	log   *slog.Logger
	mux   *http.ServeMux

	mu         sync.Mutex
	srv        *http.Server
	addr       string
	onShutdown []func() // run first by Shutdown: end streams, which never go idle
	patterns   []string // every route served, for Routes
	stats      requestStats
	census     func() (*fleet.Summary, error) // the gateway's fleet census (fleet.go); nil without one
	since      func(device string) time.Time  // its tracker's hint (fleet.Tracker.Since)
}

// New builds the API over a ledger application and its CometBFT node's client.
func New(app *ledger.App, comet rpcclient.Client, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{app: app, comet: comet, log: logger, mux: http.NewServeMux()}
	s.routes()
	return s
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s.logged(s.mux) }

// Start listens on addr ("127.0.0.1:8080"; port 0 picks one) and serves in the background.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("api: listening on %s: %w", addr, err)
	}
	s.mu.Lock()
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.addr = ln.Addr().String()
	srv := s.srv
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server stopped", "err", err)
		}
	}()
	return nil
}

// Addr is the address the server listens on, once started.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops the server, waiting for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	hooks := s.onShutdown
	s.mu.Unlock()
	for _, f := range hooks {
		f()
	}
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// HandlerFunc answers a request with a value to encode as JSON, or an
// error (see NewError) that becomes {"error": {"code", "message"}}.
type HandlerFunc func(r *http.Request) (any, error)

// Mount serves more routes (other packages' endpoints, e.g. the gateway's)
// with the API's JSON and error conventions.
func (s *Server) Mount(routes map[string]HandlerFunc) {
	for pattern, h := range routes {
		s.handle(pattern, h)
	}
}

// MountHandler serves a route with a plain handler (streams).
func (s *Server) MountHandler(pattern string, h http.Handler) {
	s.addRoute(pattern)
	s.mux.Handle(pattern, h)
}

func (s *Server) addRoute(pattern string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.patterns = append(s.patterns, pattern)
}

// Routes lists the patterns served ("GET /v1/status", ...), in the order
// they were added: the OpenAPI tests check each is documented.
func (s *Server) Routes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.patterns...)
}

// NewError is an error answered with the given HTTP status and code.
func NewError(status int, code, msg string) error { return &apiError{status, code, msg} }

// WithStatus answers body with a success status other than 200.
func WithStatus(status int, body any) any { return &accepted{status, body} }

func (s *Server) handle(pattern string, h HandlerFunc) {
	s.addRoute(pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		v, err := h(r)
		if err != nil {
			WriteError(w, err)
			return
		}
		if ar, ok := v.(*accepted); ok {
			writeJSON(w, ar.status, ar.body)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// accepted lets a handler pick its success status.
type accepted struct {
	status int
	body   any
}

func (s *Server) routes() {
	s.handle("GET /v1/status", s.status)
	s.handle("POST /v1/txs", s.submitTx)
	s.handle("GET /v1/txs", s.searchTxs) // search.go
	s.handle("GET /v1/txs/{hash}", s.getTx)
	s.handle("GET /v1/blocks/{height}", s.getBlock)
	s.handle("GET /v1/headers/{height}", s.getHeader)
	s.handle("GET /v1/orgs", s.listOrgs)
	s.handle("GET /v1/orgs/{id}", s.getOrg)
	s.handle("GET /v1/orgs/{id}/datakey", s.getDataKey) // datakey.go
	s.handle("GET /v1/orgs/{id}/datakey/shares/{grantee}", s.getDataKeyShare)
	s.handle("GET /v1/devices", s.listDevices)
	s.handle("GET /v1/devices/{id}", s.getDevice)
	s.handle("GET /v1/devices/{id}/history", s.getHistory)
	s.handle("GET /v1/grants", s.listGrants)
	s.handle("GET /v1/grants/{id}", s.getGrant)
	s.handle("GET /v1/accounts/{id}/nonce", s.getNonce)
	s.handle("GET /v1/validators", s.getValidators)
	s.validatorRoutes() // validators.go
	s.handle("GET /v1/anchors/{gateway}", s.getAnchor)
	s.handle("GET /v1/proofs", s.getProof)
	s.agreementRoutes() // agreements.go
	s.handle("GET /v1/exchanges/{root}", s.getExchange)
	s.fileRoutes()     // files.go
	s.firmwareRoutes() // firmware.go
	s.configRoutes()   // config.go
	s.jobRoutes()      // jobs.go
	s.fleetRoutes()    // fleet.go
	s.erasureRoutes()  // erasures.go
	s.upgradeRoutes()  // upgrade.go
	s.MountHandler("GET /v1/openapi.json", http.HandlerFunc(serveOpenAPI))
	s.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, notFound(fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path)))
	})
}

func (s *Server) status(r *http.Request) (any, error) {
	st, err := s.comet.Status(r.Context())
	if err != nil {
		return nil, err
	}
	return client.Status{
		ChainID: st.NodeInfo.Network, NodeID: string(st.NodeInfo.DefaultNodeID), Moniker: st.NodeInfo.Moniker,
		Height: st.SyncInfo.LatestBlockHeight, BlockTime: st.SyncInfo.LatestBlockTime,
		AppHeight: s.app.Height(), CatchingUp: st.SyncInfo.CatchingUp, Validator: st.ValidatorInfo.Address.String(),
	}, nil
}

func (s *Server) submitTx(r *http.Request) (any, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, record.MaxTxBytes*2+1024))
	if err != nil {
		return nil, badRequest("reading the request body: " + err.Error())
	}
	raw := body
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/cose") {
		var req client.SubmitRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, badRequest(`body must be {"tx": "<base64 COSE_Sign1>"} or raw bytes with Content-Type application/cose: ` + err.Error())
		}
		raw = req.Tx
	}
	if len(raw) == 0 {
		return nil, badRequest("no transaction in the request")
	}
	switch wait := r.URL.Query().Get("wait"); wait {
	case "", "none", "check":
		res, err := s.comet.BroadcastTxSync(r.Context(), raw)
		if err != nil {
			return nil, submitError(err)
		}
		out := client.SubmitResult{Hash: res.Hash.String(), Code: res.Code, Reason: record.Code(res.Code).String(), Log: res.Log}
		if res.Code != 0 {
			return nil, &apiError{ledgerStatus(record.Code(res.Code)), record.Code(res.Code).String(), res.Log}
		}
		return &accepted{http.StatusAccepted, out}, nil
	case "commit":
		res, err := s.comet.BroadcastTxCommit(r.Context(), raw)
		if err != nil {
			return nil, submitError(err)
		}
		if res.CheckTx.Code != 0 {
			c := record.Code(res.CheckTx.Code)
			return nil, &apiError{ledgerStatus(c), c.String(), res.CheckTx.Log}
		}
		c := record.Code(res.TxResult.Code)
		out := client.SubmitResult{Hash: res.Hash.String(), Height: res.Height, Code: res.TxResult.Code, Reason: c.String(), Log: res.TxResult.Log, Events: res.TxResult.Events}
		if c != record.CodeOK {
			// Committed but refused by execution: the tx is on chain with its error.
			return &accepted{ledgerStatus(c), out}, nil
		}
		return out, nil
	default:
		return nil, badRequest(fmt.Sprintf("wait=%q: use commit, check or leave it out", wait))
	}
}

func submitError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "tx already exists in cache"):
		return &apiError{http.StatusConflict, "duplicate", "this exact transaction was already submitted"}
	case strings.Contains(msg, "mempool is full"):
		return &apiError{http.StatusServiceUnavailable, "mempool_full", "the node's mempool is full; retry later"}
	case strings.Contains(msg, "timed out waiting for tx to be included"):
		return &apiError{http.StatusGatewayTimeout, "timeout", "the transaction was accepted but not committed in time; query it by hash later"}
	}
	return &apiError{http.StatusBadGateway, "consensus", "submitting to consensus: " + msg}
}

func (s *Server) getTx(r *http.Request) (any, error) {
	h, err := hex.DecodeString(r.PathValue("hash"))
	if err != nil || len(h) != 32 {
		return nil, badRequest("tx hash must be 64 hex digits")
	}
	// CometBFT indexes a block's txs just after committing it, so a tx whose
	// commit was just reported may not be found for a moment: retry briefly.
	res, err := s.comet.Tx(r.Context(), h, false)
	for try := 0; err != nil && try < 10; try++ {
		select {
		case <-r.Context().Done():
			return nil, r.Context().Err()
		case <-time.After(50 * time.Millisecond):
		}
		res, err = s.comet.Tx(r.Context(), h, false)
	}
	if err != nil {
		return nil, notFound(fmt.Sprintf("tx %X: %v", h, err))
	}
	return txInfo(res), nil
}

func (s *Server) heightParam(r *http.Request) (*int64, error) {
	v := r.PathValue("height")
	if v == "latest" || v == "" {
		return nil, nil
	}
	h, err := strconv.ParseInt(v, 10, 64)
	if err != nil || h <= 0 {
		return nil, badRequest(fmt.Sprintf("height %q must be a positive number or latest", v))
	}
	return &h, nil
}

func (s *Server) getBlock(r *http.Request) (any, error) {
	h, err := s.heightParam(r)
	if err != nil {
		return nil, err
	}
	res, err := s.comet.Block(r.Context(), h)
	if err != nil {
		return nil, notFound(err.Error())
	}
	b := res.Block
	out := client.BlockInfo{Height: b.Height, Hash: res.BlockID.Hash.String(), Time: b.Time, Proposer: b.ProposerAddress.String(), AppHash: b.AppHash.String(), Txs: []string{}}
	for _, tx := range b.Txs {
		out.Txs = append(out.Txs, fmt.Sprintf("%X", tx.Hash()))
	}
	return out, nil
}

// getHeader returns the signed header and the validator set of a height,
// in CometBFT's JSON encoding, for clients that check proofs.
func (s *Server) getHeader(r *http.Request) (any, error) {
	h, err := s.heightParam(r)
	if err != nil {
		return nil, err
	}
	c, err := s.comet.Commit(r.Context(), h)
	if err != nil {
		return nil, notFound(err.Error())
	}
	// The latest block's commit is the one this node saw rather than the one
	// the next block carries; either holds more than 2/3 of the signatures.
	vals, err := allValidators(r.Context(), s.comet, c.Height)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(mustCmtJSON(client.HeaderResponse{SignedHeader: c.SignedHeader, Validators: vals})), nil
}
