package device

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh"
)

// Message is a message from the device's mailbox, checked and opened.
type Message struct {
	From string
	Kind string // message or command
	Type string
	Seq  uint64
	Body []byte // opened, if it was sealed
}

// ErrRefused wraps the reason a gateway gave for refusing a deposit.
var ErrRefused = errors.New("device: the mailbox refused the message")

// Deposit leaves a signed message (mesh.Sign, mesh.Seal) in its receiver's
// mailbox at the device's gateway, over HTTP: a device with no mesh node
// can message one that sleeps. It returns the gateway's result.
func (d *Device) Deposit(ctx context.Context, env []byte) (*mesh.Result, error) {
	e, err := mesh.Decode(env)
	if err != nil {
		return nil, err
	}
	var res *mesh.Result
	err = d.each(ctx, "leaving a message", func(_ int, gw Gateway) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(gw.API, "/")+"/v1/mailbox/"+url.PathEscape(e.To), bytes.NewReader(env))
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var dr mesh.DepositResponse
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err := json.Unmarshal(b, &dr); err != nil || len(dr.Hash) == 0 {
			return fmt.Errorf("%s answered %s: %s", gw.API, resp.Status, strings.TrimSpace(string(b)))
		}
		res = &dr.Result
		return nil
	})
	if err != nil {
		return nil, err
	}
	if res.Status != mesh.StatusDelivered {
		return res, fmt.Errorf("%w: %s: %s", ErrRefused, res.Status, res.Reason)
	}
	return res, nil
}

// inbox is the device's receiving state for mailbox reads over HTTP.
type inbox struct {
	once  sync.Once
	err   error
	auth  *MeshAuthority
	guard *mesh.ReplayGuard
}

func (d *Device) inboxState() (*inbox, error) {
	d.inbox.once.Do(func() {
		var ws mesh.WindowStore
		if d.cfg.stateDir != "" {
			fs, err := mesh.OpenFileWindowStore(filepath.Join(d.cfg.stateDir, "replay.json"))
			if err != nil {
				d.inbox.err = err
				return
			}
			ws = fs
		}
		d.inbox.auth = d.MeshAuthority(0)
		d.inbox.guard = mesh.NewReplayGuard(ws)
	})
	return &d.inbox, d.inbox.err
}

// Inbox reads the device's mailbox at its gateway over HTTP (with its
// token) and checks each message as a receiver must, trusting no gateway:
// the sender is active and granted (proofs verified by the light client),
// the signature is the sender's, the sequence number is fresh (replay
// state in the state directory), then opens it. Messages that fail are
// dropped; the ones read are deleted from the mailbox. At most 64 per
// call: call again while more is true.
func (d *Device) Inbox(ctx context.Context) (msgs []Message, more bool, err error) {
	st, err := d.inboxState()
	if err != nil {
		return nil, false, err
	}
	tok, err := d.Token(ctx)
	if err != nil {
		return nil, false, err
	}
	var held mesh.Held
	var gwAPI string
	err = d.each(ctx, "reading the mailbox", func(_ int, gw Gateway) error {
		gwAPI = strings.TrimSuffix(gw.API, "/") + "/v1/mailbox/" + url.PathEscape(d.id)
		return mailboxCall(ctx, http.MethodGet, gwAPI+"?limit=64", tok, &held)
	})
	if err != nil {
		return nil, false, err
	}
	var last uint64
	for _, h := range held.Messages {
		last = h.Seq
		m, err := d.checkHeld(st, h.Envelope)
		if err != nil {
			d.cfg.log.Warn("device: mailbox message refused", "device", d.id, "err", err)
			continue
		}
		msgs = append(msgs, *m)
	}
	if last > 0 {
		var left map[string]uint64
		if err := mailboxCall(ctx, http.MethodDelete, fmt.Sprintf("%s?upto=%d", gwAPI, last), tok, &left); err != nil {
			return msgs, held.More, fmt.Errorf("read, but not deleted from the mailbox: %w", err)
		}
	}
	return msgs, held.More, nil
}

func (d *Device) checkHeld(st *inbox, raw []byte) (*Message, error) {
	env, err := mesh.Decode(raw)
	if err != nil {
		return nil, err
	}
	if env.To != d.id || env.Chain != st.auth.ChainID() {
		return nil, fmt.Errorf("a message for %s on %s", env.To, env.Chain)
	}
	sender, err := st.auth.Device(env.From)
	if err != nil {
		return nil, err
	}
	if !sender.Active {
		return nil, fmt.Errorf("%w: %s", mesh.ErrInactiveSender, env.From)
	}
	ok, err := st.auth.Granted(sender, env.Kind, "device:"+d.id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", mesh.ErrNotGranted, env.From)
	}
	if err := env.Verify(sender.Key); err != nil {
		return nil, err
	}
	fresh, err := st.guard.Accept(env.From, env.Seq)
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, fmt.Errorf("%w: %d from %s", mesh.ErrReplay, env.Seq, env.From)
	}
	body, err := env.Open(d.key)
	if err != nil {
		return nil, err
	}
	return &Message{From: env.From, Kind: env.Kind, Type: env.Type, Seq: env.Seq, Body: body}, nil
}

func mailboxCall(ctx context.Context, method, u string, tok []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "CWT "+identity.EncodeCWTPassword(tok))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

// NewMessage signs (and seals, with seal) a message from this device to
// another, with the device's next sequence number for messages: the
// receiver's key is proved with the light client.
func (d *Device) NewMessage(ctx context.Context, to string, o mesh.Outgoing, seal bool) ([]byte, error) {
	st, err := d.inboxState()
	if err != nil {
		return nil, err
	}
	o.To, o.Seal = to, seal
	return mesh.Compose(d.key, d.id, d.msgSeq(), o, st.auth)
}

// msgSeq is the next sequence number of the device's messages: the clock
// in microseconds at the first, then counting up (mesh.Node.NextSeq).
func (d *Device) msgSeq() uint64 {
	d.msgMu.Lock()
	defer d.msgMu.Unlock()
	if d.lastMsg == 0 {
		d.lastMsg = mesh.TimeSeq(d.cfg.now())
	}
	d.lastMsg++
	return d.lastMsg
}
