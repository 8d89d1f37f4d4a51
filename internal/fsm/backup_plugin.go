package fsm

import (
	"bufio"
	"fmt"
	"io"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/state"
)

// BackupState is one plugin's module and state as a backup holds them.
type BackupState struct {
	Wasm         []byte       // the active module (nil if the plugin is not active in the backup)
	Records      []abi.Record // the plugin's namespace, in key order, with versions
	AppliedIndex uint64       // the last log entry the backup includes
	Time         int64        // that entry's leader time, Unix ns (0 if unknown)
}

// ReadBackupPlugin reads a backup (or snapshot) file and returns plugin
// name's module and state, for running the plugin locally (`raftkv plugin
// run --backup`). It checks the same checksums as InspectBackup's reading
// does for what it returns; a plugin with neither a module nor a namespace
// in the backup is an error.
func ReadBackupPlugin(r io.Reader, name string) (BackupState, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	hdr, err := ReadSnapshotHeader(br)
	if err != nil {
		return BackupState{}, err
	}
	out := BackupState{AppliedIndex: hdr.Applied, Time: hdr.LastTime}
	for _, p := range hdr.Plugins {
		if p.Name == name {
			out.Wasm = p.Wasm
		}
	}
	st := state.New()
	if err := st.Restore(br); err != nil {
		return BackupState{}, wrapCorrupt(err)
	}
	ns, ok := st.View().Namespace(name)
	if !ok && out.Wasm == nil {
		return BackupState{}, fmt.Errorf("raftkv: the backup has no plugin %q", name)
	}
	if ok {
		ns.Scan(nil, nil, ns.Len()+1, func(k, v []byte, ver uint64) bool {
			out.Records = append(out.Records, abi.Record{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...), Version: ver})
			return true
		})
	}
	return out, nil
}
