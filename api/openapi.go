package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3 description of the /v1 API (api/openapi.json in
// the repository), served at GET /v1/openapi.json. Change it with the
// routes: TestOpenAPI checks its structure and the web tests call every
// documented GET endpoint on a devnet.
//
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(OpenAPI)
}
