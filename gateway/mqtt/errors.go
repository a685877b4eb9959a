package mqtt

import "errors"

// ErrConfig: Start was given an unusable Config. (The Authenticator's and
// the Ingestor's errors are the gateway's edge contract, package
// gateway/edge: ErrUnknownDevice, ErrInactiveDevice, ErrBadToken,
// ErrRejected, ErrOverloaded and ErrDuplicate; the broker answers each with
// its own reason code.)
var ErrConfig = errors.New("invalid mqtt config")
