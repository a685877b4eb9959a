//go:build !race

package mesh

// raceEnabled: the race detector is on (timings are not the machine's).
const raceEnabled = false
