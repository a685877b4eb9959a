package device_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The device side links no server and does not execute the ledger: no
// gateway, ledger application, API server, broker, store, IAVL, CEL,
// bitswap, libp2p host, nor CometBFT's consensus, mempool, p2p or state.
// A full device opts in to the mesh and files through device/meshnode,
// which is not guarded. (tailscale's deptest, STYLE.md 17.)

// deviceSide are the packages a device links.
var deviceSide = []string{
	"github.com/thingnet/thingnet/device",
	"github.com/thingnet/thingnet/lightclient",
}

// forbidden are import paths the device side must not link, with every
// package below them.
var forbidden = []string{
	"github.com/mochi-mqtt/server/v2",
	"github.com/cockroachdb/pebble", // and pebble/v2
	"github.com/cosmos/iavl",
	"github.com/google/cel-go",
	"github.com/ipfs/boxo/bitswap",
	"github.com/libp2p/go-libp2p/p2p", // the host, transports, discovery, relays
	"github.com/thingnet/thingnet/gateway",
	"github.com/thingnet/thingnet/ledger",
	"github.com/thingnet/thingnet/api",
	"github.com/thingnet/thingnet/mesh",
	"github.com/thingnet/thingnet/files",
	"github.com/thingnet/thingnet/node",
	"github.com/thingnet/thingnet/devnet",
	"github.com/thingnet/thingnet/chain",
	"github.com/cometbft/cometbft/consensus",
	"github.com/cometbft/cometbft/mempool",
	"github.com/cometbft/cometbft/p2p",
	"github.com/cometbft/cometbft/state",
	"github.com/cometbft/cometbft/node",
}

// forbiddenExact are packages forbidden by themselves, not the ones below.
var forbiddenExact = []string{
	"github.com/libp2p/go-libp2p", // the host's constructor; go-libp2p/core (ids, keys) is fine
}

// allowed are the light halves of forbidden packages.
var allowed = []string{
	"github.com/thingnet/thingnet/mesh/message",
	"github.com/thingnet/thingnet/files/firmware",
}

// forbiddenDep reports whether the device side may not link pkg.
func forbiddenDep(pkg string) bool {
	for _, a := range allowed {
		if pkg == a || strings.HasPrefix(pkg, a+"/") {
			return false
		}
	}
	for _, f := range forbiddenExact {
		if pkg == f {
			return true
		}
	}
	for _, f := range forbidden {
		if pkg == f || strings.HasPrefix(pkg, f+"/") || strings.HasPrefix(pkg, f+"/v") {
			return true
		}
	}
	return false
}

func TestForbiddenDep(t *testing.T) {
	for pkg, want := range map[string]bool{
		"github.com/cockroachdb/pebble/v2":               true,
		"github.com/cockroachdb/pebble/v2/vfs":           true,
		"github.com/cockroachdb/pebblex":                 false,
		"github.com/libp2p/go-libp2p":                    true,
		"github.com/libp2p/go-libp2p/p2p/host/basic":     true,
		"github.com/libp2p/go-libp2p/core/peer":          false,
		"github.com/thingnet/thingnet/mesh":              true,
		"github.com/thingnet/thingnet/mesh/message":      false,
		"github.com/thingnet/thingnet/meshx":             false,
		"github.com/thingnet/thingnet/files/firmware":    false,
		"github.com/thingnet/thingnet/gateway/edge":      true,
		"github.com/cometbft/cometbft/types":             false,
		"github.com/cometbft/cometbft/p2p/conn":          true,
		"github.com/cometbft/cometbft/state/indexer":     true,
		"github.com/thingnet/thingnet/device/meshnode":   false,
		"github.com/thingnet/thingnet/lightclient":       false,
		"github.com/thingnet/thingnet/ledger/internal/x": true,
	} {
		if got := forbiddenDep(pkg); got != want {
			t.Errorf("forbiddenDep(%s) = %v; want %v", pkg, got, want)
		}
	}
}

// goList runs go list -deps for pkg with env added.
func goList(t *testing.T, pkg string, env ...string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	cmd := exec.Command(gobin, "list", "-deps", pkg)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestDeviceDeps fails when the device side links a server or the ledger,
// listing every offender.
func TestDeviceDeps(t *testing.T) {
	for _, pkg := range deviceSide {
		deps := goList(t, pkg)
		var bad []string
		for _, d := range deps {
			if forbiddenDep(d) {
				bad = append(bad, d)
			}
		}
		t.Logf("%s links %d packages", pkg, len(deps))
		if len(bad) > 0 {
			t.Errorf("%s links %d forbidden packages (a full device opts in through device/meshnode):\n\t%s",
				pkg, len(bad), strings.Join(bad, "\n\t"))
		}
	}
}

// TestDeviceBuildsEverywhere builds the device side for the GOOS=linux
// architectures devices run on, 32-bit included (every other linux
// architecture builds too; these stand for them, as each costs a cold
// build of the device side).
func TestDeviceBuildsEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("cross builds take a while on a cold cache")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	for _, target := range [][]string{
		{"GOARCH=arm", "GOARM=7"},
		{"GOARCH=386"},
		{"GOARCH=mipsle", "GOMIPS=softfloat"},
		{"GOARCH=mips", "GOMIPS=softfloat"},
		{"GOARCH=riscv64"},
		{"GOARCH=arm64"},
	} {
		cmd := exec.Command(gobin, append([]string{"build", "-o", os.DevNull}, deviceSide...)...)
		cmd.Env = append(append(os.Environ(), "GOOS=linux", "CGO_ENABLED=0"), target...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("GOOS=linux %s go build: %v\n%s", strings.Join(target, " "), err, out)
		}
	}
}
