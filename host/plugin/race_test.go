//go:build race

package plugin_test

// raceEnabled is true when built with -race, which runs wasm 5-10x slower.
const raceEnabled = true
