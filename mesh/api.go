package mesh

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/mesh/message"
)

// MountAPI adds the mesh endpoints of a gateway to its API:
//
//	GET    /v1/mesh                  the node's peer id, addresses and counters
//	POST   /v1/mailbox/{device}      deposit a signed message (body: its bytes); answers a signed receipt
//	GET    /v1/mailbox/{device}      held messages, to the device only ("Authorization: Bearer <token>", api.Caller)
//	DELETE /v1/mailbox/{device}?upto=N  acknowledge held messages up to N (same authorization)
//
// A deposit over HTTP is checked exactly as one over the mesh.
func MountAPI(s *api.Server, n *Node) {
	h := apiHandlers{n: n, s: s}
	routes := map[string]api.HandlerFunc{"GET /v1/mesh": h.info}
	if n.mailbox != nil {
		routes["POST /v1/mailbox/{device}"] = h.deposit
		routes["GET /v1/mailbox/{device}"] = h.list
		routes["DELETE /v1/mailbox/{device}"] = h.ack
	}
	s.Mount(routes)
}

type apiHandlers struct {
	n *Node
	s *api.Server
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

// authorize lets only the device itself at its mailbox: its messages are
// for it alone (api.Caller authenticates it).
func (h apiHandlers) authorize(r *http.Request) (string, error) {
	device := r.PathValue("device")
	caller, _, err := h.s.Caller(r)
	if err != nil {
		return "", err
	}
	if caller != device {
		if caller == "" {
			return "", api.NewError(http.StatusUnauthorized, "unauthenticated", "a mailbox is read by its device only: send Authorization: Bearer <the device's token> (thingnet token --key DEVICE_KEY)")
		}
		return "", api.NewError(http.StatusForbidden, "forbidden", fmt.Sprintf("%s may not read the mailbox of %s: a mailbox is read by its device only", caller, device))
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
