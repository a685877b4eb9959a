package files

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/thingnet/thingnet/identity"
)

// Client uses a node's content endpoints (MountAPI).
type Client struct {
	Base   string // the node's API address, e.g. http://127.0.0.1:26602
	HTTP   *http.Client
	Device string // device id for writes
	Token  []byte // the device's CWT for writes
}

// DeviceToken mints a short-lived CWT for the content endpoints.
func DeviceToken(k *identity.Key, device, chainID string) ([]byte, error) {
	return identity.NewCWT(k, device, chainID, time.Now(), 10*time.Minute)
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Base, "/")+path, body)
	if err != nil {
		return err
	}
	if c.Token != nil {
		req.Header.Set("Authorization", identity.Bearer(c.Token))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	res, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// Add uploads r as a file (POST /v1/content); progress counts bytes sent.
func (c *Client) Add(ctx context.Context, r io.Reader, progress Progress) (AddResponse, error) {
	var out AddResponse
	err := c.do(ctx, http.MethodPost, "/v1/content", &countReader{r: r, progress: progress}, &out)
	return out, err
}

// Get downloads a file to w (GET /v1/content/{cid}); progress counts bytes
// received, total is the announced size (-1 if unknown). A body shorter
// than announced is an error.
func (c *Client) Get(ctx context.Context, cid string, w io.Writer, progress func(done, total int64)) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.Base, "/")+"/v1/content/"+cid, nil)
	if err != nil {
		return 0, err
	}
	res, err := c.http().Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return 0, fmt.Errorf("GET /v1/content/%s: %s: %s", cid, res.Status, strings.TrimSpace(string(b)))
	}
	total := res.ContentLength
	cw := &countWriter{w: w}
	if progress != nil {
		cw.progress = func(n int64) { progress(n, total) }
	}
	n, err := io.Copy(cw, res.Body)
	if err == nil && total >= 0 && n != total {
		err = fmt.Errorf("GET /v1/content/%s: got %d of %d bytes (a block could not be fetched)", cid, n, total)
	}
	return n, err
}

// List returns the node's pins and store counters.
func (c *Client) List(ctx context.Context) (ContentList, error) {
	var out ContentList
	err := c.do(ctx, http.MethodGet, "/v1/content", nil, &out)
	return out, err
}

// Pin asks the node to fetch and pin cid.
func (c *Client) Pin(ctx context.Context, cid string) error {
	return c.do(ctx, http.MethodPost, "/v1/content/"+cid+"/pin", nil, nil)
}

// Unpin asks the node to unpin cid.
func (c *Client) Unpin(ctx context.Context, cid string) error {
	return c.do(ctx, http.MethodDelete, "/v1/content/"+cid+"/pin", nil, nil)
}

// Rate formats a progress line: done of total, percent, and rate since start.
func Rate(done, total int64, since time.Duration) string {
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	rate := 0.0
	if s := since.Seconds(); s > 0 {
		rate = mib(done) / s
	}
	if total > 0 {
		return fmt.Sprintf("%.1f / %.1f MiB  %3d%%  %.1f MiB/s", mib(done), mib(total), done*100/total, rate)
	}
	return fmt.Sprintf("%.1f MiB  %.1f MiB/s", mib(done), rate)
}
