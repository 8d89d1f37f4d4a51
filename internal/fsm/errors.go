package fsm

import "errors"

// The errors the state machine's results and reads carry. Package host
// re-exports each under the same name (host.ErrInvalid is ErrInvalid) and
// documents them there, with the errors of its own; test with errors.Is.
var (
	// ErrTimeout: a read or a plugin call did not complete in time.
	ErrTimeout = errors.New("raftkv: timeout")
	// ErrUnknownPlugin: no plugin of that name is active.
	ErrUnknownPlugin = errors.New("raftkv: unknown plugin")
	// ErrInvalid: an entry (or request) is malformed or breaks a limit.
	ErrInvalid = errors.New("raftkv: invalid request")
	// ErrStopped: the state machine stopped applying the log (fail-stop).
	ErrStopped = errors.New("raftkv: node stopped applying the log")
	// ErrNotFound: a plugin (or member) an entry names does not exist.
	ErrNotFound = errors.New("raftkv: not found")
	// ErrPrecondition: a deploy's precondition failed.
	ErrPrecondition = errors.New("raftkv: precondition failed")
	// ErrConflict: a deploy would replace a module of another name.
	ErrConflict = errors.New("raftkv: conflict")
	// ErrQuarantined: the plugin is quarantined.
	ErrQuarantined = errors.New("raftkv: plugin quarantined")
	// ErrCorruptSnapshot: a snapshot or backup failed verification.
	ErrCorruptSnapshot = errors.New("raftkv: corrupt snapshot")
)
