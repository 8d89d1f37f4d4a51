package host

import (
	"io"

	"github.com/raftkv/raftkv/internal/fsm"
)

// The node's state machine is internal/fsm. What of it is part of this
// package's API is re-exported here under the same names.

// Writes that are safe to retry: the bounds of the replicated table of
// idempotency keys (internal/fsm/sessions.go).
const (
	// SessionTTL is how long, in the log's time, a key's result is kept.
	SessionTTL = fsm.SessionTTL
	// MaxSessions is the most keys kept.
	MaxSessions = fsm.MaxSessions
	// MaxSessionBytes bounds the table's bytes (keys, results, overhead).
	MaxSessionBytes = fsm.MaxSessionBytes
	// MaxIdempotencyKey is the longest idempotency key, in bytes.
	MaxIdempotencyKey = fsm.MaxIdempotencyKey
)

// ValidIdempotencyKey checks an idempotency key: 1 to MaxIdempotencyKey
// printable ASCII characters (a UUID, or the client package's 32 hex digits).
func ValidIdempotencyKey(key string) error { return fsm.ValidIdempotencyKey(key) }

// The backup file (the snapshot format, internal/fsm/snapshot.go), read
// offline.
type (
	// BackupInfo describes a backup (or snapshot) file, as InspectBackup
	// reads it.
	BackupInfo = fsm.BackupInfo
	// BackupPlugin is an active plugin's module in a backup.
	BackupPlugin = fsm.BackupPlugin
	// BackupNamespace is one namespace of a backup's state.
	BackupNamespace = fsm.BackupNamespace
	// BackupState is one plugin's module and state as a backup holds them.
	BackupState = fsm.BackupState
)

// InspectBackup reads a whole backup, verifies every checksum (the header's,
// each module's hash, the state stream's) and describes it. It changes
// nothing; a backup that fails verification is an ErrCorruptSnapshot error.
func InspectBackup(r io.Reader) (BackupInfo, error) { return fsm.InspectBackup(r) }

// ReadBackupPlugin reads a backup (or snapshot) file and returns plugin
// name's module and state, for running the plugin locally (`raftkv plugin
// run --backup`). It checks the same checksums as InspectBackup's reading
// does for what it returns; a plugin with neither a module nor a namespace
// in the backup is an error.
func ReadBackupPlugin(r io.Reader, name string) (BackupState, error) {
	return fsm.ReadBackupPlugin(r, name)
}
