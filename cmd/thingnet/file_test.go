package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thingnet/thingnet/client"
	"github.com/thingnet/thingnet/record"
)

// TestFileCLI: add on one node, get through another (bitswap between the
// devnet's gateways), a private file shared with a fetch grant, revoked and
// re-keyed, pins and listings.
func TestFileCLI(t *testing.T) {
	d, _, ks := testDevnet(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	on := func(i int) func(args ...string) string {
		return func(args ...string) string { return mustCLI(t, d.APIURL(i), ks, args...) }
	}
	n0, n1, n2 := on(0), on(1), on(2)
	for _, k := range []string{"cam-1", "cam-2", "cam-3"} {
		n0("keys", "new", k)
		n0("device", "register", "--key", "demo-admin", "--org", "demo", "--device-key", k, "--class", "camera")
	}
	syncNodes(t, d)
	dir := t.TempDir()
	data := make([]byte, 1<<20+333)
	rand.Read(data)
	src := filepath.Join(dir, "clip.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// Public: add on node 0, get through node 1.
	out := n0("file", "add", src, "--key", "cam-1")
	if !strings.Contains(out, "add  1.0 / 1.0 MiB  100%") {
		t.Errorf("no progress line: %q", out)
	}
	cid := strings.Fields(out)[0]
	if !strings.HasPrefix(cid, "bafy") {
		t.Fatalf("add printed %q", out)
	}
	dst := filepath.Join(dir, "got.bin")
	n1("file", "get", cid, "-O", dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("node 1 served different bytes")
	}
	n1("file", "pin", cid, "--key", "cam-2")
	if out := n1("file", "ls", "--local"); !strings.Contains(out, cid+" pinned") {
		t.Errorf("ls --local = %q", out)
	}
	// Each node recorded its own pin on the ledger (file.pin, through its
	// gateway's tx queue): node 0 when it added the file, node 1 now.
	gw0, gw1 := d.Gateway(0).ID(), d.Gateway(1).ID()
	waitPinners := func(want ...string) {
		t.Helper()
		var out string
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			out = n2("file", "pins", cid)
			ok := strings.Contains(out, fmt.Sprintf("%d nodes pin", len(want)))
			for _, w := range want {
				ok = ok && strings.Contains(out, w)
			}
			if ok {
				return
			}
		}
		t.Fatalf("file pins = %q; want %v", out, want)
	}
	waitPinners(gw0, gw1)
	n1("file", "unpin", cid, "--key", "cam-2")
	waitPinners(gw0)

	// Private: only devices with a wrapped key open it.
	n0("file", "add", src, "--key", "cam-1", "--publish", "demo/secret", "--private", "--type", "video/mp4")
	syncNodes(t, d)
	if out := n2("file", "ls", "demo"); !strings.Contains(out, "demo/secret") || !strings.Contains(out, "private v1, 1 keys") {
		t.Errorf("ls demo = %q", out)
	}
	if _, err := cli(t, d.APIURL(2), ks, "file", "get", "demo/secret", "--key", "cam-2", "-O", dst); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("get without a grant: %v", err)
	}
	if _, err := cli(t, d.APIURL(0), ks, "file", "share", "demo/secret", "--key", "cam-1", "--to", "cam-2"); err != nil {
		t.Logf("share to a device of the owner's org needs no grant: %v", err)
	}
	syncNodes(t, d)
	n2("file", "get", "demo/secret", "--key", "cam-2", "-O", dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("cam-2 got a different plaintext")
	}
	// Revoke and re-key: cam-2 has no key to the new version; cam-1 still opens it.
	n0("file", "revoke", "demo/secret", "--key", "cam-1", "--recipient", "cam-2", "--rekey")
	syncNodes(t, d)
	if _, err := cli(t, d.APIURL(2), ks, "file", "get", "demo/secret", "--key", "cam-2", "-O", dst); err == nil {
		t.Fatal("cam-2 opened the file after revoke")
	}
	os.Remove(dst)
	n2("file", "get", "demo/secret", "--key", "cam-1", "-O", dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("cam-1 lost the re-keyed file")
	}
	if out := n0("file", "ls", "demo"); !strings.Contains(out, "private v2, 1 keys") {
		t.Errorf("after rekey: %q", out)
	}

	// Firmware: the demo admin publishes a release of the clip as an image and approves it.
	n0("firmware", "publish", src, "--key", "demo-admin", "--vendor", "demo", "--class", "camera", "--version", "1.0.0", "--seq", "1", "--cid", cid)
	if _, err := cli(t, d.APIURL(0), ks, "firmware", "publish", src, "--key", "demo-admin", "--vendor", "demo", "--class", "camera", "--version", "0.9.0", "--seq", "1"); err == nil {
		t.Error("a release with a seq that is not newer was accepted")
	}
	n0("firmware", "approve", "--key", "demo-admin", "--org", "demo", "--vendor", "demo", "--class", "camera", "--seq", "1")
	n0("firmware", "rollout", "--key", "demo-admin", "--org", "demo", "--vendor", "demo", "--class", "camera", "--seq", "1", "--percent", "50", "--blocks-per-wave", "5", "--max-failures", "2")
	if out := n0("firmware", "status", "--vendor", "demo", "--class", "camera"); !strings.Contains(out, "#1 1.0.0") || !strings.Contains(out, "approved by demo") || !strings.Contains(out, "1.0.0 active, wave 1") {
		t.Errorf("firmware status = %q", out)
	}
	// The cameras report: cam-1 installed it, cam-2 runs an image nobody
	// approved (flagged), cam-3 failed to install it (and says so twice:
	// a device counts once).
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	n0("firmware", "report", "--key", "cam-1", "--version", "1.0.0", "--digest", digest)
	n0("firmware", "report", "--key", "cam-2", "--version", "6.6.6", "--digest", strings.Repeat("ab", 32))
	n0("firmware", "report", "--key", "cam-3", "--version", "1.0.0", "--digest", digest, "--failed", "--reason", "flash write failed")
	n0("firmware", "report", "--key", "cam-3", "--version", "1.0.0", "--digest", digest, "--failed") // counts once
	syncNodes(t, d)
	if out := n2("device", "history", "cam-3"); !strings.Contains(out, "flash write failed") {
		t.Errorf("cam-3's history does not keep the failure's reason:\n%s", out)
	}
	var st fwStatus
	if err := json.Unmarshal([]byte(n2("firmware", "status", "--vendor", "demo", "--class", "camera", "--org", "demo", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Releases) != 1 || len(st.Approvals) != 1 || st.Rollout == nil || len(st.Devices) != 3 || st.Flagged != 1 {
		t.Fatalf("firmware status -o json = %+v", st)
	}
	if r := st.Rollout; r.Installed != 1 || r.Failed != 1 || r.Status != "active" || r.Wave < 1 {
		t.Errorf("rollout = %+v", r)
	}
	versions := map[string]string{}
	for _, dv := range st.Devices {
		versions[dv.Version+"/"+dv.Flagged] = dv.ID
	}
	if versions["1.0.0/"] == "" || versions["6.6.6/abababababababab"] == "" {
		t.Errorf("devices = %+v", st.Devices)
	}
	// A release read through node 1 with its proof; an absent one answers 404 with an absence proof.
	var rel record.FirmwareReleaseRecord
	c := client.New(d.APIURL(1))
	if p, found, err := c.ProvedRecord(ctx, "/v1/firmware/demo/camera/1", &rel); err != nil || !found || p == nil || rel.Manifest.Version != "1.0.0" {
		t.Errorf("proved release: %v found=%v %+v", err, found, rel)
	}
	if _, found, err := c.ProvedRecord(ctx, "/v1/firmware/demo/camera/2", nil); err != nil || found {
		t.Errorf("absent release: found=%v %v", found, err)
	}
	// A second failure aborts the rollout.
	n0("firmware", "report", "--key", "cam-2", "--version", "1.0.0", "--digest", digest, "--failed")
	if out := n0("firmware", "status", "--vendor", "demo", "--class", "camera"); !strings.Contains(out, "aborted") || !strings.Contains(out, "0% offered") {
		t.Errorf("after 2 failures: %q", out)
	}
}
