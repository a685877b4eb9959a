package client

import "github.com/thingnet/thingnet/record"

// Rollout is an organisation's rollout for a class with the wave open at
// the height read.
type Rollout struct {
	*record.FirmwareRolloutRecord
	Wave uint64 `json:"wave"`
	// Percent of the class's devices offered the release now (0..100).
	Offered uint64 `json:"offered_percent"`
}
