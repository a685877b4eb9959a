package mesh

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// inOwnNetns runs the calling test in a network namespace of its own
// (unshare --net), where loopback is the only interface and is made
// multicast-capable: mDNS then stays on this machine. It returns true in
// the child, which runs the test body; the parent waits for the child and
// reports its result. Without root or unshare the test is skipped.
func inOwnNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv("THINGNET_TEST_NETNS") == t.Name() {
		for _, args := range [][]string{
			{"link", "set", "lo", "up", "multicast", "on"},
			{"route", "add", "224.0.0.0/4", "dev", "lo"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("in the test namespace: ip %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace (unshare --net)")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare (util-linux) to make a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2) in the network namespace")
	}
	cmd := exec.Command(unshare, "--net", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "THINGNET_TEST_NETNS="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in its own network namespace: %v\n%s", err, out)
	}
	return false
}
