// Package web is the explorer: a read-only dashboard of the network that
// every node serves at /explorer/ (and redirects / to). Its pages are plain
// HTML, CSS and JavaScript embedded in the binary — no CDN, no build step —
// and read the node's own /v1 API, its /metrics and its event stream
// (GET /v1/events) for live updates. "Verify this reading" runs the whole
// proof in the browser: the RFC 6962 inclusion proof and the ICS23 state
// proofs with WebCrypto SHA-256, and the device's signature with WebCrypto
// Ed25519 or ECDSA P-256. A reader signs in with a token or with a key
// file opened in the page, and sealed readings open in the page
// (assets/keys.js) with the audited @noble libraries, vendored as one
// committed file, assets/vendor/noble.js (web/vendor/build.sh rebuilds it;
// building thingnet never needs npm).
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Prefix is where the explorer is served.
const Prefix = "/explorer/"

// Handler serves the explorer's files under Prefix.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic("web: embedded assets missing: " + err.Error()) // a build without assets/ cannot happen
	}
	files := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The pages load nothing from elsewhere; say so to the browser.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// Mounter is what Mount needs: *api.Server has it.
type Mounter interface {
	MountHandler(pattern string, h http.Handler)
}

// Mount serves the explorer on s at /explorer/ and redirects / there.
func Mount(s Mounter) {
	s.MountHandler("GET "+Prefix, Handler())
	s.MountHandler("GET /{$}", http.RedirectHandler(Prefix, http.StatusFound))
}
