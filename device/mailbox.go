package device

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/thingnet/thingnet/mesh/message"
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
func (d *Device) Deposit(ctx context.Context, env []byte) (*message.Result, error) {
	var res *message.Result
	err := d.each(ctx, "leaving a message", func(_ int, gw Gateway) error {
		dr, err := message.MailboxClient{Base: gw.API}.Deposit(ctx, env)
		if err == nil {
			res = &dr.Result
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if res.Status != message.StatusDelivered {
		return res, fmt.Errorf("%w: %s: %s", ErrRefused, res.Status, res.Reason)
	}
	return res, nil
}

// inbox is the device's receiving state for mailbox reads over HTTP.
type inbox struct {
	once  sync.Once
	err   error
	auth  *MeshAuthority
	guard *message.ReplayGuard
}

func (d *Device) inboxState() (*inbox, error) {
	d.inbox.once.Do(func() {
		ws, err := d.ReplayStore()
		if err != nil {
			d.inbox.err = err
			return
		}
		d.inbox.auth = d.MeshAuthority(0)
		d.inbox.guard = message.NewReplayGuard(ws)
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
	var held *message.Held
	var mc message.MailboxClient
	err = d.each(ctx, "reading the mailbox", func(_ int, gw Gateway) error {
		mc = message.MailboxClient{Base: gw.API}
		held, err = mc.Held(ctx, d.id, tok, 64)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	var last uint64
	for _, h := range held.Messages {
		last = h.Seq
		env, body, err := message.CheckHeld(st.auth, st.guard, d.key, d.id, h.Envelope)
		if err != nil {
			d.cfg.log.Warn("device: mailbox message refused", "device", d.id, "err", err)
			continue
		}
		msgs = append(msgs, Message{From: env.From, Kind: env.Kind, Type: env.Type, Seq: env.Seq, Body: body})
	}
	if last > 0 {
		if _, err := mc.Ack(ctx, d.id, tok, last); err != nil {
			return msgs, held.More, fmt.Errorf("read, but not deleted from the mailbox: %w", err)
		}
	}
	return msgs, held.More, nil
}

// NewMessage signs (and seals, with seal) a message from this device to
// another, with the device's next sequence number for messages: the
// receiver's key is proved with the light client.
func (d *Device) NewMessage(ctx context.Context, to string, o message.Outgoing, seal bool) ([]byte, error) {
	st, err := d.inboxState()
	if err != nil {
		return nil, err
	}
	o.To, o.Seal = to, seal
	return message.Compose(d.key, d.id, d.msgSeq(), o, st.auth)
}

// msgSeq is the next sequence number of the device's messages: the clock
// in microseconds at the first, then counting up (mesh.Node.NextSeq).
func (d *Device) msgSeq() uint64 {
	d.msgMu.Lock()
	defer d.msgMu.Unlock()
	if d.lastMsg == 0 {
		d.lastMsg = message.TimeSeq(d.cfg.now())
	}
	d.lastMsg++
	return d.lastMsg
}
