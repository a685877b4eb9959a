package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// apiError is an error with an HTTP status and a code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(msg string) error { return &apiError{http.StatusBadRequest, "bad_request", msg} }
func notFound(msg string) error   { return &apiError{http.StatusNotFound, "not_found", msg} }

// ledgerStatus maps a ledger result code to an HTTP status.
func ledgerStatus(c record.Code) int {
	switch c {
	case record.CodeOK:
		return http.StatusOK
	case record.CodeUnknownSigner, record.CodeBadSignature, record.CodeInactive:
		return http.StatusUnauthorized
	case record.CodeUnauthorized:
		return http.StatusForbidden
	case record.CodeNotFound:
		return http.StatusNotFound
	case record.CodeConflict, record.CodeBadNonce:
		return http.StatusConflict
	case record.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	default:
		return http.StatusBadRequest
	}
}

// WriteError answers err as the API does: {"error": {"code", "message"}}
// with the status of an error made by NewError (or one of the API's),
// 404 for ledger.ErrNotFound, 503 before the first state, else 500.
func WriteError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			ae = &apiError{http.StatusNotFound, "not_found", err.Error()}
		case errors.Is(err, ledger.ErrNoState):
			ae = &apiError{http.StatusServiceUnavailable, "no_state", err.Error()}
		default:
			ae = &apiError{http.StatusInternalServerError, "internal", err.Error()}
		}
	}
	writeJSON(w, ae.status, client.ErrorBody{Error: client.ErrorDetail{Code: ae.code, Message: ae.msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
