package ratelimit

import "time"

// Clock tells the time: the one clock type of the node's components that
// take an injected clock (the limiters, the gateway, the mesh). Tests
// inject a fake one.
type Clock interface {
	Now() time.Time
}

// SystemClock returns the real clock, time.Now (with its monotonic reading,
// so wall-clock steps do not disturb the buckets).
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
