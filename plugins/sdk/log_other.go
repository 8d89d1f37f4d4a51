//go:build !wasip1

package sdk

import (
	"log"
	"strconv"
)

var levelNames = [...]string{"debug", "info", "warn", "error"}

// Log writes msg to the node's log at level (LevelDebug..LevelError). It has
// no effect on state or results. Outside wasm (tests with MemState) it writes
// to the standard logger.
func Log(level int, msg string) {
	name := "level " + strconv.Itoa(level)
	if level >= 0 && level < len(levelNames) {
		name = levelNames[level]
	}
	log.Printf("plugin %s: %s", name, msg)
}
