//go:build race

package fsm

import "time"

// Under the race detector the host's side of every call is slower: the
// spins a test watches and the limits that must fit a module's load keep
// their long margins.
const (
	watchSpin             = spinIters
	quarantineCallTimeout = 5 * time.Second
)
