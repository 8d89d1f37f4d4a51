//go:build race

package cluster

// raceEnabled: built with the race detector (see FastConfig).
const raceEnabled = true
