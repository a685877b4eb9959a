package api

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"strings"
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
	_, _ = w.Write(OpenAPI)
}

// Undocumented returns the routes ("GET /v1/x/{id}") of patterns that the
// OpenAPI document does not describe. Routes outside /v1 and /metrics (the
// explorer's pages) need no description.
func Undocumented(patterns []string) []string {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		return []string{"api/openapi.json does not parse: " + err.Error()}
	}
	var out []string
	for _, p := range patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok || !(strings.HasPrefix(path, "/v1/") || path == "/metrics") {
			continue
		}
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			out = append(out, p)
		}
	}
	return out
}
