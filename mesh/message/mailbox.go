package message

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/thingnet/thingnet/identity"
)

// MailboxClient speaks to a gateway's mailbox endpoints over HTTP (see
// mesh.MountAPI): for a CLI or a device with no mesh node.
type MailboxClient struct {
	Base string       // the gateway's API, e.g. http://gw:26602
	HTTP *http.Client // nil: http.DefaultClient
}

func (c MailboxClient) url(device string) string {
	return strings.TrimSuffix(c.Base, "/") + "/v1/mailbox/" + url.PathEscape(device)
}

func (c MailboxClient) do(req *http.Request, ok func(status int) bool, out any) error {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if !ok(resp.StatusCode) || json.Unmarshal(b, out) != nil {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// Deposit leaves a signed message in its receiver's mailbox. A refusal is
// a result (with the gateway's signed receipt), not an error.
func (c MailboxClient) Deposit(ctx context.Context, env []byte) (*DepositResponse, error) {
	e, err := Decode(env)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(e.To), bytes.NewReader(env))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/cose")
	var dr DepositResponse
	// Refusals (403, 429) carry a receipt too.
	if err := c.do(req, func(int) bool { return true }, &dr); err != nil {
		return nil, err
	}
	if len(dr.Hash) == 0 {
		return nil, fmt.Errorf("mesh: %s answered no receipt", c.Base)
	}
	return &dr, nil
}

// authed is a request with the device's token.
func (c MailboxClient) authed(ctx context.Context, method, u string, tok []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", identity.Bearer(tok))
	return req, nil
}

func status200(s int) bool { return s == http.StatusOK }

// Held lists up to limit messages held for device (tok: its CWT).
func (c MailboxClient) Held(ctx context.Context, device string, tok []byte, limit int) (*Held, error) {
	req, err := c.authed(ctx, http.MethodGet, c.url(device)+"?limit="+strconv.Itoa(limit), tok)
	if err != nil {
		return nil, err
	}
	var h Held
	return &h, c.do(req, status200, &h)
}

// Ack deletes device's messages up to upto and returns how many are left.
func (c MailboxClient) Ack(ctx context.Context, device string, tok []byte, upto uint64) (uint64, error) {
	req, err := c.authed(ctx, http.MethodDelete, c.url(device)+"?upto="+strconv.FormatUint(upto, 10), tok)
	if err != nil {
		return 0, err
	}
	var left map[string]uint64
	err = c.do(req, status200, &left)
	return left["left"], err
}

// CheckHeld runs a receiver's checks on a message read from a mailbox by
// a receiver with no mesh node (the gateway is not trusted): for device
// id, from an active sender holding a grant for its kind, signed by the
// sender's current key, fresh (guard), then opened with k.
func CheckHeld(auth Authority, guard *ReplayGuard, k *identity.Key, id string, raw []byte) (*Envelope, []byte, error) {
	env, err := Decode(raw)
	if err != nil {
		return nil, nil, err
	}
	if env.To != id || env.Chain != auth.ChainID() {
		return env, nil, fmt.Errorf("%w: a message for %s on %s", ErrWrongReceiver, env.To, env.Chain)
	}
	sender, err := auth.Device(env.From)
	if err != nil {
		return env, nil, err
	}
	if !sender.Active {
		return env, nil, fmt.Errorf("%w: %s", ErrInactiveSender, env.From)
	}
	if ok, err := auth.Granted(sender, env.Kind, "device:"+id); err != nil {
		return env, nil, err
	} else if !ok {
		return env, nil, fmt.Errorf("%w: %s may not send a %s to %s", ErrNotGranted, env.From, env.Kind, id)
	}
	if err := env.Verify(sender.Key); err != nil {
		return env, nil, err
	}
	if fresh, err := guard.Accept(env.From, env.Seq); err != nil {
		return env, nil, err
	} else if !fresh {
		return env, nil, fmt.Errorf("%w: %d from %s", ErrReplay, env.Seq, env.From)
	}
	pt, err := env.Open(k)
	if err != nil {
		return env, nil, fmt.Errorf("%w: %v", ErrUndecryptable, err)
	}
	return env, pt, nil
}
