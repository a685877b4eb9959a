package ratelimit

import "errors"

// ErrInvalidLimits reports Limits that cannot be enforced: a rate that is
// not a positive finite number, a burst below 1, or a byte burst smaller
// than the largest packet (which could then never pass).
var ErrInvalidLimits = errors.New("ratelimit: invalid limits")
