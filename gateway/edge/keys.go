package edge

import (
	"net/netip"
	"strings"
)

// Prefixes of the rate-limit keys.
const (
	devicePrefix = "device:"
	sourcePrefix = "addr:"
)

// DeviceKey is the rate-limit key of a device, on every transport.
func DeviceKey(deviceID string) string { return devicePrefix + deviceID }

// DeviceOf returns the device whose key is key, and false for a key that
// is not a device's (a source address's).
func DeviceOf(key string) (deviceID string, ok bool) { return strings.CutPrefix(key, devicePrefix) }

// SourceKey is the rate-limit key of a source address: the address, or for
// IPv6 its /64 network, since one host commonly holds a whole /64 (keying by
// address would let it rotate through 2^64 of them). An IPv4-mapped IPv6
// address is its IPv4 address; a zone is dropped.
func SourceKey(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return sourcePrefix + p.String()
	}
	return sourcePrefix + ip.String()
}

// IsSourceKey reports whether key is a source address's key.
func IsSourceKey(key string) bool { return strings.HasPrefix(key, sourcePrefix) }

// Source returns the IP address of a connection's remote address
// ("host:port") and its SourceKey. A remote address that does not parse is
// its own IP and key.
func Source(remote string) (ip, key string) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote, sourcePrefix + remote
	}
	a := ap.Addr().Unmap().WithZone("")
	return a.String(), SourceKey(a)
}
