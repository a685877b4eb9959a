package edge

import (
	"net/netip"
	"testing"
)

func TestSource(t *testing.T) {
	for remote, want := range map[string][2]string{
		"192.0.2.7:4711":              {"192.0.2.7", "addr:192.0.2.7"},
		"[::ffff:192.0.2.7]:4711":     {"192.0.2.7", "addr:192.0.2.7"},
		"[2001:db8:1:2:3:4:5:6]:4711": {"2001:db8:1:2:3:4:5:6", "addr:2001:db8:1:2::/64"},
		"[fe80::1%eth0]:4711":         {"fe80::1", "addr:fe80::/64"},
		"pipe":                        {"pipe", "addr:pipe"},
	} {
		if ip, key := Source(remote); ip != want[0] || key != want[1] {
			t.Errorf("Source(%s) = %s, %s; want %s, %s", remote, ip, key, want[0], want[1])
		}
	}
}

func TestSourceKey(t *testing.T) {
	for ip, want := range map[string]string{
		"127.0.0.1":        "addr:127.0.0.1",
		"::ffff:127.0.0.1": "addr:127.0.0.1",
		"::":               "addr:::/64",
		"2001:db8::1":      "addr:2001:db8::/64",
	} {
		if got := SourceKey(netip.MustParseAddr(ip)); got != want {
			t.Errorf("SourceKey(%s) = %s; want %s", ip, got, want)
		}
		if !IsSourceKey(want) {
			t.Errorf("IsSourceKey(%s) = false; want true", want)
		}
		if _, ok := DeviceOf(want); ok {
			t.Errorf("DeviceOf(%s) found a device in a source key", want)
		}
	}
}

func TestDeviceKey(t *testing.T) {
	const id = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	key := DeviceKey(id)
	if got, ok := DeviceOf(key); !ok || got != id {
		t.Errorf("DeviceOf(DeviceKey(%s)) = %s, %v; want %s, true", id, got, ok, id)
	}
	if IsSourceKey(key) {
		t.Errorf("IsSourceKey(%s) = true; want false", key)
	}
}

func TestTally(t *testing.T) {
	tl := NewTally("a", "b")
	tl.Add("a")
	tl.Add("a")
	if got := tl.Snapshot(); len(got) != 2 || got["a"] != 2 || got["b"] != 0 {
		t.Errorf("Snapshot() = %v; want map[a:2 b:0]", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("Add of an unknown key did not panic")
		}
	}()
	tl.Add("c")
}
