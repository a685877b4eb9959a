package main

import (
	"math"
	"strings"
	"testing"
)

// TestDevnetLimits: the devnet's limit flags set the gateways' per-device
// and per-address limits apart, and bad values are refused by name.
func TestDevnetLimits(t *testing.T) {
	dev, src, err := devnetLimits(limitFlags{addrRate: 1000, devRate: 10, devBurst: 20})
	if err != nil {
		t.Fatal(err)
	}
	if dev.MsgsPerSec != 10 || dev.Burst != 20 || src.MsgsPerSec != 1000 || src.Burst != 2000 || src.BytesPerSec < 1000*1024 {
		t.Errorf("device limits %+v, address limits %+v; want 10/s burst 20, 1000/s burst 2000 with room for the bytes", dev, src)
	}
	for _, tc := range []struct {
		l    limitFlags
		want string
	}{
		{limitFlags{addrRate: 0, devRate: 10, devBurst: 20}, "--per-address-rate"},
		{limitFlags{addrRate: 100, devRate: -1, devBurst: 20}, "--per-device-rate"},
		{limitFlags{addrRate: math.Inf(1), devRate: 10, devBurst: 20}, "positive"},
		{limitFlags{addrRate: 100, addrBurst: -3, devRate: 10, devBurst: 20}, "--per-address-burst"},
		{limitFlags{addrRate: 100, devRate: 10, devBurst: 0}, "--per-device-burst"},
	} {
		if _, _, err := devnetLimits(tc.l); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("devnetLimits(%+v) = %v; want an error naming %s", tc.l, err, tc.want)
		}
	}
}
