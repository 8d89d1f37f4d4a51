//go:build wasip1

package sdk

import "runtime/debug"

func init() { debug.SetMemoryLimit(SoftMemoryLimit) }
