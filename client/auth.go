package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/thingnet/thingnet/identity"
)

// Identity is who a Client says it is to the node: the read paths serve
// reading values, payloads and streams only to the device itself, admins
// of its organisation, read grantees, or anyone for what is public
// (docs/privacy.md). Each request carries "Authorization: Bearer <token>",
// a CWT the identity signs for the chain (api.Caller checks it).
type Identity struct {
	// Key signs the tokens; ID is the id it signs as (default the key's
	// did:key; a device whose key was rotated signs as its first id).
	Key *identity.Key
	ID  string
	// ChainID is the tokens' audience; empty asks the node once.
	ChainID string
	// Lifetime of each token (default 5 minutes); a new one is made when
	// less than a fifth of it is left.
	Lifetime time.Duration
	// Now is the clock the tokens are dated by (default time.Now).
	Now func() time.Time

	mu  sync.Mutex
	tok []byte
	exp time.Time
}

// Token is an Identity that presents a token made elsewhere (e.g. by
// `thingnet token`) as it is, until it expires.
func Token(tok []byte) *Identity { return &Identity{tok: tok, exp: time.Unix(1<<40, 0)} }

// WithIdentity returns a copy of c that presents id's tokens.
func (c *Client) WithIdentity(id *Identity) *Client {
	cc := *c
	cc.Identity = id
	return &cc
}

// header returns the Authorization header value for a request of c.
func (id *Identity) header(ctx context.Context, c *Client) (string, error) {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.Key == nil {
		if id.tok == nil {
			return "", errors.New("client: an Identity needs a Key or a token")
		}
		return identity.Bearer(id.tok), nil
	}
	now := time.Now
	if id.Now != nil {
		now = id.Now
	}
	life := id.Lifetime
	if life <= 0 {
		life = 5 * time.Minute
	}
	if id.tok != nil && now().Add(life/5).Before(id.exp) {
		return identity.Bearer(id.tok), nil
	}
	if id.ChainID == "" {
		var st Status
		// Ask without authenticating: status is public.
		if err := c.WithIdentity(nil).do(ctx, http.MethodGet, "/v1/status", nil, "", &st); err != nil {
			return "", fmt.Errorf("asking the node its chain id for a token: %w", err)
		}
		id.ChainID = st.ChainID
	}
	as := id.ID
	if as == "" {
		as = id.Key.ID()
	}
	t := now()
	tok, err := identity.NewCWT(id.Key, as, id.ChainID, t, life)
	if err != nil {
		return "", fmt.Errorf("making a token for %s: %w", as, err)
	}
	id.tok, id.exp = tok, t.Add(life)
	return identity.Bearer(tok), nil
}

// At returns a client of the node at baseURL with c's identity: to ask
// other gateways of the same network as the same caller.
func (c *Client) At(baseURL string) *Client {
	n := New(baseURL)
	n.Identity = c.Identity
	return n
}
