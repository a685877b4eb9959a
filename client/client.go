package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/record"
)

// Client talks to a node's /v1 API.
type Client struct {
	BaseURL string       // e.g. "http://127.0.0.1:8080"
	HTTP    *http.Client // nil: a client with a 30 s timeout
	// Identity, if set, is who the client says it is: every request
	// carries its token (auth.go). Without it the client is anonymous and
	// sees what is public.
	Identity *Identity
}

// New returns a client for the node at baseURL ("host:port" gets http://).
func New(baseURL string) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Error is an error answer of the API.
type Error struct {
	Status int
	ErrorDetail
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	return c.doMax(ctx, method, path, body, contentType, out, 64<<20)
}

// doMax is do reading an answer of at most max bytes; a longer one is an
// error, never cut short silently.
func (c *Client) doMax(ctx context.Context, method, path string, body io.Reader, contentType string, out any, max int64) error {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if err := c.Authorize(ctx, req); err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the node at %s (is it running? check --node): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return fmt.Errorf("the answer of %s is over %d MiB: ask for less (a smaller page)", path, max>>20)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			return &Error{Status: resp.StatusCode, ErrorDetail: eb.Error}
		}
		// Committed-but-failed submissions answer a SubmitResult with a 4xx.
		var sr SubmitResult
		if json.Unmarshal(b, &sr) == nil && sr.Hash != "" {
			if p, ok := out.(*SubmitResult); ok {
				*p = sr
			}
			return &Error{Status: resp.StatusCode, ErrorDetail: ErrorDetail{Code: sr.Reason, Message: sr.Log}}
		}
		return &Error{Status: resp.StatusCode, ErrorDetail: ErrorDetail{Code: "http", Message: strings.TrimSpace(string(b))}}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the answer of %s: %w", path, err)
	}
	return nil
}

// Authorize sets req's Authorization header to c's token, if c has an
// Identity: for requests built outside the client (streams).
func (c *Client) Authorize(ctx context.Context, req *http.Request) error {
	if c.Identity == nil {
		return nil
	}
	h, err := c.Identity.header(ctx, c)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", h)
	return nil
}

// Submit sends a signed tx; with wait it returns once the tx is committed
// (or refused by execution, as an *Error carrying the result).
func (c *Client) Submit(ctx context.Context, raw []byte, wait bool) (*SubmitResult, error) {
	path := "/v1/txs"
	if wait {
		path += "?wait=commit"
	}
	var res SubmitResult
	err := c.do(ctx, http.MethodPost, path, bytes.NewReader(raw), "application/cose", &res)
	return &res, err
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.do(ctx, http.MethodGet, "/v1/status", nil, "", &s)
}

// NextNonce returns the nonce signer's next tx should use.
func (c *Client) NextNonce(ctx context.Context, signer string) (uint64, error) {
	var n Nonce
	if err := c.do(ctx, http.MethodGet, "/v1/accounts/"+url.PathEscape(signer)+"/nonce", nil, "", &n); err != nil {
		return 0, err
	}
	return n.Nonce + 1, nil
}

// Get reads any /v1 path into out (a *[]byte gets the raw JSON).
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, "", out)
}

// Delete asks for DELETE of a /v1 path and decodes the answer into out.
func (c *Client) Delete(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodDelete, path, nil, "", out)
}

// ProvedRecord reads a record with its proof; rec receives the record when
// it exists. For a missing record it returns the absence proof and found false.
func (c *Client) ProvedRecord(ctx context.Context, path string, rec any) (p *record.Proof, found bool, err error) {
	var raw struct {
		Height int64           `json:"height"`
		Record json.RawMessage `json:"record"`
		Proof  *record.Proof   `json:"proof"`
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var body []byte
	err = c.do(ctx, http.MethodGet, path+sep+"prove=true", nil, "", &body)
	if e, ok := err.(*Error); ok && e.Status == http.StatusNotFound && e.Code == "http" {
		body, err = []byte(e.Message), nil // an absence, answered with its proof
	}
	if err != nil {
		return nil, false, err
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, false, fmt.Errorf("decoding the answer of %s: %w", path, err)
	}
	if raw.Proof == nil {
		return nil, false, fmt.Errorf("the node sent no proof for %s", path)
	}
	found = len(raw.Record) > 0 && string(raw.Record) != "null"
	if rec != nil && found {
		if err := json.Unmarshal(raw.Record, rec); err != nil {
			return nil, false, err
		}
	}
	return raw.Proof, found, nil
}

// Header returns the signed header and validators of a height.
func (c *Client) Header(ctx context.Context, height int64) (*HeaderResponse, error) {
	var raw []byte
	if err := c.do(ctx, http.MethodGet, "/v1/headers/"+strconv.FormatInt(height, 10), nil, "", &raw); err != nil {
		return nil, err
	}
	var h HeaderResponse
	if err := cmtjson.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("decoding header %d: %w", height, err)
	}
	return &h, nil
}

// Send signs m with key as signer ("" = the key's did:key), using the next
// nonce and an expiry 100 blocks ahead, and submits it.
func (c *Client) Send(ctx context.Context, key *identity.Key, signer string, m record.Msg, wait bool) (*SubmitResult, error) {
	if signer == "" {
		signer = key.ID()
	}
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	nonce, err := c.NextNonce(ctx, signer)
	if err != nil {
		return nil, err
	}
	raw, err := record.NewTx(key, signer, st.ChainID, nonce, st.Height+TxLifetime, m)
	if err != nil {
		return nil, err
	}
	return c.Submit(ctx, raw, wait)
}

// TxLifetime is how many blocks ahead Send sets a tx's expiry.
const TxLifetime = 100

// Post sends in as JSON to a /v1 path and decodes the answer into out.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, bytes.NewReader(b), "application/json", out)
}

// MaxProofKeys is the most state keys one GET /v1/proofs proves.
const MaxProofKeys = 32

// Proofs is the answer of GET /v1/proofs with several keys: the proof of
// each, in the order asked, all of the state after block Height.
type Proofs struct {
	Height int64           `json:"height"`
	Proofs []*record.Proof `json:"proofs"`
}

// ProveKeys proves 2 to MaxProofKeys state keys in the state after block
// height (0: the latest) in one request. Each proof is the gateway's word
// until verified: the caller checks each against a header it trusts.
func (c *Client) ProveKeys(ctx context.Context, height int64, keys ...[]byte) (*Proofs, error) {
	if len(keys) < 2 || len(keys) > MaxProofKeys {
		return nil, fmt.Errorf("ProveKeys: %d keys; want 2 to %d (one key: GET /v1/proofs?key=)", len(keys), MaxProofKeys)
	}
	q := url.Values{}
	for _, k := range keys {
		q.Add("key", hex.EncodeToString(k))
	}
	if height > 0 {
		q.Set("height", strconv.FormatInt(height, 10))
	}
	var out Proofs
	if err := c.Get(ctx, "/v1/proofs?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	if len(out.Proofs) != len(keys) {
		return nil, fmt.Errorf("the node proved %d keys of the %d asked", len(out.Proofs), len(keys))
	}
	return &out, nil
}
