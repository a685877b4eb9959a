package chain

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
)

// Port range FreePortBase draws from: above the well-known services, below Linux's
// ephemeral range (32768+), from which outgoing connections take their local ports.
const (
	portRangeLow  = 20000
	portRangeHigh = 32000
	portAttempts  = 64
)

// FreePortBase finds a base port where 10*n consecutive ports are free on 127.0.0.1,
// for a LocalNet of n nodes (for tests). The ports are free when checked; nothing
// holds them, so another process may still take one before the nodes listen. Bases
// are drawn at random so that test processes running at once rarely collide.
func FreePortBase(n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("chain: FreePortBase(%d): need at least one node", n)
	}
	span := 10 * n
	if span > portRangeHigh-portRangeLow {
		return 0, fmt.Errorf("chain: FreePortBase(%d): %d ports do not fit in %d..%d", n, span, portRangeLow, portRangeHigh)
	}
	for range portAttempts {
		base := portRangeLow + rand.IntN(portRangeHigh-portRangeLow-span)
		if portsFree(base, span) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("chain: FreePortBase(%d): no %d free consecutive ports found in %d tries", n, span, portAttempts)
}

func portsFree(base, span int) bool {
	for p := base; p < base+span; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}
