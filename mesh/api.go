package mesh

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
)

// Authenticator checks a device's CWT (the gateway's Authenticate).
type Authenticator func(ctx context.Context, deviceID string, token []byte) error

// MountAPI adds the mesh endpoints of a gateway to its API:
//
//	GET    /v1/mesh                  the node's peer id, addresses and counters
//	POST   /v1/mailbox/{device}      deposit a signed message (body: its bytes); answers a signed receipt
//	GET    /v1/mailbox/{device}      held messages (device's CWT in "Authorization: CWT <token>")
//	DELETE /v1/mailbox/{device}?upto=N  acknowledge held messages up to N (same authorization)
//
// A deposit over HTTP is checked exactly as one over the mesh.
func MountAPI(s *api.Server, n *Node, auth Authenticator) {
	h := apiHandlers{n: n, auth: auth}
	routes := map[string]api.HandlerFunc{"GET /v1/mesh": h.info}
	if n.mailbox != nil {
		routes["POST /v1/mailbox/{device}"] = h.deposit
		routes["GET /v1/mailbox/{device}"] = h.list
		routes["DELETE /v1/mailbox/{device}"] = h.ack
	}
	s.Mount(routes)
}

type apiHandlers struct {
	n    *Node
	auth Authenticator
}

func (h apiHandlers) info(*http.Request) (any, error) {
	return message.MeshInfo{ID: h.n.id, PeerID: h.n.PeerID().String(), Addrs: h.n.Addrs(), Relay: h.n.cfg.Relay, Stats: h.n.Stats()}, nil
}

func (h apiHandlers) deposit(r *http.Request) (any, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, message.MaxEnvelope+1))
	if err != nil {
		return nil, api.NewError(http.StatusBadRequest, "bad_request", err.Error())
	}
	if len(raw) > message.MaxEnvelope {
		return nil, api.NewError(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a message is at most %d bytes", message.MaxEnvelope))
	}
	if env, err := message.Decode(raw); err == nil && env.To != r.PathValue("device") {
		return nil, api.NewError(http.StatusBadRequest, "wrong_receiver", fmt.Sprintf("the message is for %s, not %s", env.To, r.PathValue("device")))
	}
	src, _, _ := net.SplitHostPort(r.RemoteAddr)
	res := h.n.mailbox.deposit(r.Context(), "http:"+src, [][]byte{raw})[0]
	if res.Status != message.StatusDelivered {
		h.n.stats.refused[res.Status].Add(1)
	}
	rc, err := message.SignReceipt(h.n.cfg.Key, h.n.id, message.Receipt{Chain: h.n.auth.ChainID(), By: h.n.id, Results: []message.Result{res}})
	if err != nil {
		return nil, err
	}
	out := message.DepositResponse{Result: res, StatusName: res.Status.String(), Receipt: rc}
	switch res.Status {
	case message.StatusDelivered:
		return api.WithStatus(http.StatusAccepted, out), nil
	case message.StatusRateLimited:
		return api.WithStatus(http.StatusTooManyRequests, out), nil
	case message.StatusInternal:
		return nil, fmt.Errorf("mesh: %s", res.Reason)
	default:
		return api.WithStatus(http.StatusForbidden, out), nil
	}
}

// authorize checks the device's CWT from "Authorization: CWT <token>".
func (h apiHandlers) authorize(r *http.Request) (string, error) {
	device := r.PathValue("device")
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "CWT ")
	if !ok {
		return "", api.NewError(http.StatusUnauthorized, "unauthorized", "send the device's token: Authorization: CWT <token> (thingnet device token)")
	}
	b, err := identity.DecodeCWTPassword(strings.TrimSpace(tok))
	if err == nil {
		err = h.auth(r.Context(), device, b)
	}
	if err != nil {
		return "", api.NewError(http.StatusUnauthorized, "unauthorized", err.Error())
	}
	d, err := h.n.auth.Device(device)
	if err != nil || !d.MailboxAt(h.n.id) {
		return "", api.NewError(http.StatusNotFound, "no_mailbox", fmt.Sprintf("this gateway keeps no mailbox for %s", device))
	}
	return device, nil
}

func (h apiHandlers) list(r *http.Request) (any, error) {
	device, err := h.authorize(r)
	if err != nil {
		return nil, err
	}
	max := uint64(maxPull)
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return nil, api.NewError(http.StatusBadRequest, "bad_request", "limit must be a positive integer")
		}
		max = min(n, maxPull)
	}
	b, err := h.n.mailbox.list(device, max)
	if err != nil {
		return nil, err
	}
	out := message.Held{Messages: []message.HeldMessage{}, More: b.More}
	for _, it := range b.Items {
		out.Messages = append(out.Messages, message.HeldMessage{Seq: it.Seq, Envelope: it.Env})
	}
	return out, nil
}

func (h apiHandlers) ack(r *http.Request) (any, error) {
	device, err := h.authorize(r)
	if err != nil {
		return nil, err
	}
	upto, err := strconv.ParseUint(r.URL.Query().Get("upto"), 10, 64)
	if err != nil {
		return nil, api.NewError(http.StatusBadRequest, "bad_request", "upto must be the seq of the last message kept")
	}
	left, err := h.n.mailbox.ack(device, upto)
	if err != nil {
		return nil, err
	}
	return map[string]uint64{"left": left}, nil
}
