//go:build !race

package fsm

import "time"

// Without the race detector (make test-short): a watched spin of about a
// second (30 ns an iteration here), and a quarantine limit that still fits
// two module loads on a loaded machine. See fsm_test.go and
// quarantine_test.go.
const (
	watchSpin             = "40000000"
	quarantineCallTimeout = 2 * time.Second
)
