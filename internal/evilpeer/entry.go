package evilpeer

import (
	"time"

	"github.com/raftkv/raftkv/abi/mp"
)

// CommandEntry is the data of a Raft log entry carrying cmd for plugin, as
// a raftkv leader proposes it: the MsgPack array [kind, time, plugin,
// payload] of internal/fsm/envelope.go, kind 1 (a command). It is written here, not
// taken from host, so that a test outside package host (one driving the
// built binary) can forge an entry a node would apply.
func CommandEntry(plugin string, cmd []byte) []byte {
	b := mp.AppendArrayHeader(nil, 4)
	b = mp.AppendUint(b, 1) // kindCommand
	b = mp.AppendInt(b, time.Now().UnixNano())
	b = mp.AppendString(b, plugin)
	return mp.AppendBytes(b, cmd)
}
