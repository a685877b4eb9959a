package files

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/thingnet/thingnet/api"
)

// MountAPI adds the content endpoints of a node's file service to its API:
//
//	POST   /v1/content             add the body as a file (pinned); a device's token required
//	GET    /v1/content             pinned roots and store counters
//	GET    /v1/content/{cid}       the file's bytes, fetched over bitswap if not local
//	POST   /v1/content/{cid}/pin   fetch and pin; a device's token required
//	DELETE /v1/content/{cid}/pin   unpin; a device's token required
//
// Writes need "Authorization: Bearer <token>" (api.Caller) of an active
// registered device: storage on a gateway is for registered devices only.
// Reads are open: a private file's content is encrypted (only its
// recipients hold its key), a public file is public (docs/privacy.md).
// The ledger's manifests are served by the api package (GET /v1/files).
func MountAPI(s *api.Server, svc *Service) {
	h := apiHandlers{svc: svc, s: s}
	s.Mount(map[string]api.HandlerFunc{
		"POST /v1/content":             h.add,
		"GET /v1/content":              h.list,
		"POST /v1/content/{cid}/pin":   h.pin,
		"DELETE /v1/content/{cid}/pin": h.unpin,
	})
	s.MountHandler("GET /v1/content/{cid}", http.HandlerFunc(h.get))
}

// statTimeout bounds the search for a file's root block.
const statTimeout = 30 * time.Second

type apiHandlers struct {
	svc *Service
	s   *api.Server
}

// AddResponse answers POST /v1/content.
type AddResponse struct {
	CID  string `json:"cid"`
	Size uint64 `json:"size"`
}

// ContentList answers GET /v1/content.
type ContentList struct {
	Pins  []string   `json:"pins"`
	Store StoreStats `json:"store"`
}

func (h apiHandlers) authorize(r *http.Request) error {
	caller, st, err := h.s.Caller(r)
	if err != nil {
		return err
	}
	if caller == "" {
		return api.NewError(http.StatusUnauthorized, "unauthenticated", "storing on a gateway is for registered devices: send Authorization: Bearer <the device's token> (thingnet token --key DEVICE_KEY)")
	}
	if _, err := st.Device(caller); err != nil {
		return api.NewError(http.StatusForbidden, "forbidden", fmt.Sprintf("%s is not a registered device: storing on a gateway is for registered devices", caller))
	}
	return nil
}

func pathCID(r *http.Request) (cid.Cid, error) {
	c, err := cid.Decode(r.PathValue("cid"))
	if err != nil {
		return cid.Undef, api.NewError(http.StatusBadRequest, "bad_request", fmt.Sprintf("%q is not a CID", r.PathValue("cid")))
	}
	return c, nil
}

func (h apiHandlers) add(r *http.Request) (any, error) {
	if err := h.authorize(r); err != nil {
		return nil, err
	}
	a, err := h.svc.Add(r.Context(), r.Body, nil)
	if err != nil {
		return nil, err
	}
	return api.WithStatus(http.StatusCreated, AddResponse{CID: a.CID.String(), Size: a.Size}), nil
}

func (h apiHandlers) list(*http.Request) (any, error) {
	out := ContentList{Pins: []string{}, Store: h.svc.store.Stats()}
	for _, c := range h.svc.store.Pins() {
		out.Pins = append(out.Pins, c.String())
	}
	return out, nil
}

func (h apiHandlers) pin(r *http.Request) (any, error) {
	if err := h.authorize(r); err != nil {
		return nil, err
	}
	c, err := pathCID(r)
	if err != nil {
		return nil, err
	}
	if err := h.svc.Pin(r.Context(), c); err != nil {
		return nil, err
	}
	return map[string]string{"pinned": c.String()}, nil
}

func (h apiHandlers) unpin(r *http.Request) (any, error) {
	if err := h.authorize(r); err != nil {
		return nil, err
	}
	c, err := pathCID(r)
	if err != nil {
		return nil, err
	}
	if err := h.svc.Unpin(r.Context(), c); errors.Is(err, ErrNotPinned) {
		return nil, api.NewError(http.StatusNotFound, "not_found", err.Error())
	} else if err != nil {
		return nil, err
	}
	return map[string]string{"unpinned": c.String()}, nil
}

// get streams a file. The size is known once the root is fetched, so the
// answer has a Content-Length; a block that cannot be fetched cuts the
// stream short (the client sees fewer bytes than announced).
func (h apiHandlers) get(w http.ResponseWriter, r *http.Request) {
	c, err := cid.Decode(r.PathValue("cid"))
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%q is not a CID: no such file", r.PathValue("cid")))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), statTimeout)
	size, err := h.svc.Stat(ctx, c)
	cancel()
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%s cannot be fetched from any provider: %v", c, err))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatUint(size, 10))
	w.Header().Set("X-Ipfs-Roots", c.String())
	h.svc.Get(r.Context(), c, w, GetOptions{}) //nolint:errcheck // headers are sent: a short body tells the client
}

// writeError answers in the API's error format ({"error": {"code", "message"}}).
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}}) //nolint:errcheck
}
