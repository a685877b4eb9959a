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
		ok      bool
	}{
		{true, "12:" + hash, []string{"http://127.0.0.1:26657"}, true},
		{true, "12", []string{"http://127.0.0.1:26657"}, false},
		{true, "x:" + hash, []string{"http://127.0.0.1:26657"}, false},
		{true, "12:" + hash, nil, false},
		{false, "12:" + hash, nil, false},
		{false, "", nil, true},
	} {
		c := node.DefaultConfig()
		c.StateSync.Enable, c.StateSync.RPCServers = tc.enable, tc.servers
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
