package host

import "errors"

// Errors returned by Node. Test with errors.Is: errors that crossed the SSH
// forwarding channel are mapped back to these sentinels.
var (
	// ErrNotLeader: this node (or the node a request was forwarded to) is not
	// the leader. Nothing was proposed; the request may be retried.
	ErrNotLeader = errors.New("raftkv: not leader")
	// ErrNoLeader: the cluster has no known leader right now.
	ErrNoLeader = errors.New("raftkv: no leader")
	// ErrTimeout: the request did not complete in time. For a write this means
	// it was not proposed (enqueue timeout) or its outcome is not known yet.
	ErrTimeout = errors.New("raftkv: timeout")
	// ErrUnknownOutcome: leadership was lost after the write was proposed; it
	// may or may not have been committed. Read before retrying.
	ErrUnknownOutcome = errors.New("raftkv: leadership lost, write outcome unknown")
	// ErrUnknownPlugin: no plugin of that name is active.
	ErrUnknownPlugin = errors.New("raftkv: unknown plugin")
	// ErrInvalid: the request is malformed or breaks a limit.
	ErrInvalid = errors.New("raftkv: invalid request")
	// ErrClosed: the node is shut down.
	ErrClosed = errors.New("raftkv: node closed")
	// ErrStopped: the node stopped applying the log (fail-stop), e.g. after a
	// plugin exceeded the wall-clock limit. See Stats().Failure.
	ErrStopped = errors.New("raftkv: node stopped applying the log")
	// ErrNotFound: a member or plugin named in a request does not exist.
	ErrNotFound = errors.New("raftkv: not found")
)
