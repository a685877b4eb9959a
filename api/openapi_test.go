package api

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/thingnet/thingnet/ledger"
)

// TestOpenAPI checks the document's structure: OpenAPI 3.x, every
// operation has responses (an error response for those that can fail),
// every $ref resolves, path parameters are declared, and operation ids are
// unique. (web's tests call every documented GET endpoint on a devnet.)
func TestOpenAPI(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi = %q; want 3.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Error("info needs title and version")
	}
	paths, _ := doc["paths"].(map[string]any)
	if len(paths) < 20 {
		t.Fatalf("only %d paths", len(paths))
	}
	// Every $ref must resolve.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				if !resolves(doc, r) {
					t.Errorf("$ref %s does not resolve", r)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	ids := map[string]string{}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range paths {
		if !strings.HasPrefix(path, "/v1/") && path != "/metrics" {
			t.Errorf("path %s is outside /v1", path)
		}
		ops, _ := item.(map[string]any)
		for method, op := range ops {
			switch method {
			case "get", "post", "put", "delete", "patch":
			default:
				t.Errorf("%s: unexpected key %q", path, method)
				continue
			}
			o, _ := op.(map[string]any)
			id, _ := o["operationId"].(string)
			if id == "" {
				t.Errorf("%s %s: no operationId", method, path)
			} else if prev, dup := ids[id]; dup {
				t.Errorf("operationId %s used by %s and %s", id, prev, path)
			}
			ids[id] = path
			resp, _ := o["responses"].(map[string]any)
			if len(resp) == 0 {
				t.Errorf("%s %s: no responses", method, path)
			}
			hasOK := false
			for code := range resp {
				if strings.HasPrefix(code, "2") {
					hasOK = true
				}
			}
			if !hasOK {
				t.Errorf("%s %s: no success response", method, path)
			}
			declared := map[string]bool{}
			params, _ := o["parameters"].([]any)
			for _, p := range params {
				pm, _ := p.(map[string]any)
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
					if pm["required"] != true {
						t.Errorf("%s %s: path parameter %v must be required", method, path, pm["name"])
					}
				}
			}
			for _, m := range param.FindAllStringSubmatch(path, -1) {
				if !declared[m[1]] {
					t.Errorf("%s %s: path parameter %s is not declared", method, path, m[1])
				}
			}
			if len(declared) > 0 && resp["404"] == nil && resp["400"] == nil {
				t.Errorf("%s %s: takes parameters but documents no error response", method, path)
			}
		}
	}
}

func resolves(doc map[string]any, ref string) bool {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var cur any = doc
	for _, part := range strings.Split(rest, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// TestOpenAPIServed checks that the node serves the document as it is in
// the repository.
func TestOpenAPIServed(t *testing.T) {
	srv, _ := newTestServer(t)
	res, err := http.Get(srv.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" || string(b) != string(OpenAPI) {
		t.Fatalf("GET /v1/openapi.json: %d %s, %d bytes", res.StatusCode, res.Header.Get("Content-Type"), len(b))
	}
}

// TestOpenAPICoversRoutes checks that every route the API serves is in the
// document (the gateway's, the event stream's and /metrics are checked on
// a full node by web's tests).
func TestOpenAPICoversRoutes(t *testing.T) {
	app, err := ledger.NewApp(ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	s := New(app, nil, nil)
	if len(s.Routes()) < 20 {
		t.Fatalf("only %d routes recorded", len(s.Routes()))
	}
	for _, r := range Undocumented(s.Routes()) {
		t.Errorf("%s is served but not in api/openapi.json: document it there", r)
	}
}
