package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// buildTags are the tags a board's thingnet-device is built with
// (docs/device-sdk.md, test/qemu): grpcnotrace keeps gRPC, which CometBFT's
// types link for its ABCI messages though a device never speaks gRPC, from
// linking golang.org/x/net/trace. That package's debug pages are
// text/template, whose calls of methods by name make the linker keep every
// exported method of every type the program has: 5.6 MiB of the mipsle
// binary (23.7 MB without the tag, 17.8 MB with it).
const buildTags = "grpcnotrace"

// heavy are packages that must not come back into the minimal program:
// each pulls megabytes a device does not use.
var heavy = []string{
	"golang.org/x/net/trace", // gRPC's /debug/requests pages
	"text/template",          // keeps every exported method (reflect MethodByName)
	"html/template",
	"github.com/google/cel-go/cel",  // the ledger's agreement guards
	"github.com/libp2p/go-libp2p",   // a mesh host (device/meshnode opts in)
	"github.com/cockroachdb/pebble", // a gateway's store
}

// The minimal program, built as for a board, links none of the heavy
// packages; it would without the tag.
func TestMinimalDeps(t *testing.T) {
	deps := goListDeps(t, "-tags", buildTags)
	t.Logf("thingnet-device -tags %s links %d packages", buildTags, len(deps))
	for _, h := range heavy {
		if slices.Contains(deps, h) {
			t.Errorf("thingnet-device -tags %s links %s again: find what imports it (go list -deps -f '{{.ImportPath}} {{.Imports}}') and cut it (docs/device-sdk.md)", buildTags, h)
		}
	}
	if plain := goListDeps(t); !slices.Contains(plain, "golang.org/x/net/trace") {
		t.Logf("without -tags %s the program no longer links golang.org/x/net/trace: the tag may be dropped", buildTags)
	}
}

func goListDeps(t *testing.T, args ...string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	cmd := exec.Command(gobin, append(append([]string{"list", "-deps"}, args...), ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=mipsle", "GOMIPS=softfloat")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}
