package main

import (
	"strings"
	"testing"

	"github.com/thingnet/thingnet/node"
)

// TestStateSyncFlags: --state-sync needs --trust HEIGHT:HASH and
// --rpc-servers, and these need --state-sync.
func TestStateSyncFlags(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		enable  bool
		trust   string
		servers []string
		peers   bool
		ok      bool
	}{
		{true, "12:" + hash, []string{"http://127.0.0.1:26657"}, true, true},
		{true, "12", []string{"http://127.0.0.1:26657"}, true, false},
		{true, "x:" + hash, []string{"http://127.0.0.1:26657"}, true, false},
		{true, "12:" + hash, nil, true, false},
		{true, "12:" + hash, []string{"http://127.0.0.1:26657"}, false, false},
		{false, "12:" + hash, nil, false, false},
		{false, "", nil, false, true},
	} {
		c := node.DefaultConfig()
		c.StateSync.Enable, c.StateSync.RPCServers = tc.enable, tc.servers
		if tc.peers {
			c.P2P.PersistentPeers = []string{strings.Repeat("ab", 20) + "@127.0.0.1:26656"}
		}
		err := stateSyncFlags(&c, tc.trust)
		if (err == nil) != tc.ok {
			t.Errorf("state sync %v, --trust %q, --rpc-servers %v: %v", tc.enable, tc.trust, tc.servers, err)
		}
		if err == nil && tc.enable {
			if c.StateSync.TrustHeight != 12 || c.Validate() != nil {
				t.Errorf("config %+v: %v", c.StateSync, c.Validate())
			}
		}
	}
}
