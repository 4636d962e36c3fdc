//go:build race

package cluster

// raceEnabled builds the binaries with the race detector when the tests run
// with it.
const raceEnabled = true
