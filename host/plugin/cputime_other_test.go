//go:build !linux

package plugin_test

import "time"

// threadCPU falls back to wall-clock time where thread CPU time is not
// available.
func threadCPU() int64 { return time.Now().UnixNano() }
