//go:build !race

package fsmtest_test

const raceEnabled = false
