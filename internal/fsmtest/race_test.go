//go:build race

package fsmtest_test

// raceEnabled shortens the long tests: the race detector slows the host side
// (and the wasm compiler) several times and does not look inside the guest.
const raceEnabled = true
