package coap

import "errors"

// ErrConfig: Start was given an unusable Config. (The Ingestor's errors
// are the gateway's edge contract, package gateway/edge: ErrRejected,
// ErrOverloaded and ErrDuplicate; this package defines no others for those
// meanings.)
var ErrConfig = errors.New("invalid coap config")
