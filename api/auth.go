package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/record"
)

// TokenSkew is the clock difference tolerated between a caller and a node
// when checking a token's times.
const TokenSkew = 30 * time.Second

// Caller authenticates an HTTP caller, the one scheme for every read path
// (docs/api.md, "Who is asking"): "Authorization: Bearer <token>", where
// the token is a CWT (identity.NewCWT; base64url text) issued and signed
// by the caller for this chain: a registered device, which must be active
// and sign with its current key, or any did:key (a person's key, e.g. an
// organisation admin's or a grantee's). Without the header the caller is
// anonymous: "" and no error. A header that does not authenticate is an
// error answered 401 with what is wrong; it is never taken for anonymous.
func Caller(r *http.Request, st *ledger.State, chainID string, now time.Time) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", nil
	}
	b, claims, err := ParseBearer(h)
	if err != nil {
		return "", err
	}
	id := claims.Subject
	pub, err := callerKey(st, id)
	if err != nil {
		return "", unauthenticated(err.Error())
	}
	if _, err := identity.VerifyCWT(b, pub, chainID, now, TokenSkew); err != nil {
		return "", unauthenticated(fmt.Sprintf("the token of %s does not check: %v", id, err))
	}
	return id, nil
}

// ParseBearer decodes an Authorization header value "Bearer <token>":
// the token's bytes and its claims, not yet verified (Caller verifies
// them against the ledger). Errors are answered 401 and say what is wrong.
func ParseBearer(h string) ([]byte, *identity.Claims, error) {
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return nil, nil, unauthenticated("the Authorization header must be \"Bearer <token>\" (a token from `thingnet token`, docs/api.md)")
	}
	b, err := identity.DecodeCWTPassword(strings.TrimSpace(tok))
	if err != nil {
		return nil, nil, unauthenticated("the bearer token is not a thingnet token: " + err.Error())
	}
	_, claims, err := identity.ParseCWT(b)
	if err != nil {
		return nil, nil, unauthenticated("the bearer token is not a thingnet token: " + err.Error())
	}
	return b, claims, nil
}

// callerKey is the key that signs for id: a device's current key, if it
// is registered and active, else the did:key's own.
func callerKey(st *ledger.State, id string) (identity.PublicKey, error) {
	d, err := st.Device(id)
	switch {
	case err == nil:
		if d.Status != record.StatusActive {
			return identity.PublicKey{}, fmt.Errorf("device %s is %s", id, d.Status)
		}
		return identity.ParseDID(d.Key)
	case errors.Is(err, ledger.ErrNotFound):
		pub, err := identity.ParseDID(id)
		if err != nil {
			return pub, fmt.Errorf("the token's subject %q is neither a registered device nor a did:key", id)
		}
		return pub, nil
	default:
		return identity.PublicKey{}, err
	}
}

// Caller authenticates r's caller against the latest committed state (see
// the function Caller).
func (s *Server) Caller(r *http.Request) (string, *ledger.State, error) {
	st, err := s.app.View(0)
	if err != nil {
		return "", nil, err
	}
	id, err := Caller(r, st, s.app.ChainID(), time.Now())
	return id, st, err
}

// Refuse is the error for a caller the read rule refuses: 401 when it is
// anonymous (it should authenticate), 403 when it is authenticated (it
// lacks a grant). what names what was asked ("the readings of did:key:…").
func Refuse(caller, what string) error {
	if caller == "" {
		return unauthenticated(what + " are not public: authenticate with \"Authorization: Bearer <token>\" (thingnet token --key KEY), as the device, an admin of its organisation or a holder of a read grant")
	}
	return &apiError{http.StatusForbidden, "forbidden", fmt.Sprintf("%s may not read %s: it is not the device, not an admin of its organisation, and holds no read grant in force on it (thingnet grant add --action read)", caller, what)}
}

func unauthenticated(msg string) error {
	return &apiError{http.StatusUnauthorized, "unauthenticated", msg}
}
