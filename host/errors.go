package host

import (
	"github.com/raftkv/raftkv/host/logstore"
	"github.com/raftkv/raftkv/host/peerrpc"
	"github.com/raftkv/raftkv/internal/fsm"
)

// Errors returned by Node. Test with errors.Is: errors that crossed the SSH
// forwarding channel are mapped back to these sentinels (host/peerrpc's
// error codes). Those the state machine returns are internal/fsm's, those
// of forwarding host/peerrpc's, under the same names.
var (
	// ErrNotLeader: this node (or the node a request was forwarded to) is not
	// the leader. Nothing was proposed; the request may be retried.
	ErrNotLeader = peerrpc.ErrNotLeader
	// ErrNoLeader: the cluster has no known leader right now.
	ErrNoLeader = peerrpc.ErrNoLeader
	// ErrTimeout: the request did not complete in time. For a write this means
	// it was not proposed (enqueue timeout) or its outcome is not known yet.
	ErrTimeout = fsm.ErrTimeout
	// ErrUnknownOutcome: leadership was lost after the write was proposed; it
	// may or may not have been committed. Read before retrying.
	ErrUnknownOutcome = peerrpc.ErrUnknownOutcome
	// ErrUnknownPlugin: no plugin of that name is active.
	ErrUnknownPlugin = fsm.ErrUnknownPlugin
	// ErrInvalid: the request is malformed or breaks a limit.
	ErrInvalid = fsm.ErrInvalid
	// ErrClosed: the node is shut down.
	ErrClosed = peerrpc.ErrClosed
	// ErrStopped: the node stopped applying the log (fail-stop), e.g. after a
	// plugin exceeded the wall-clock limit. See Stats().Failure.
	ErrStopped = fsm.ErrStopped
	// ErrNotFound: a member or plugin named in a request does not exist.
	ErrNotFound = fsm.ErrNotFound
	// ErrDegraded: this node cannot write its Raft log (a full disk, an I/O
	// error): a write it led failed before it was stored, or there is no
	// leader while it cannot write (a single node cannot elect itself
	// until it can record its vote). See Degraded; it resumes by itself.
	ErrDegraded = logstore.ErrWriteFailing
	// ErrNotReady: the node is starting: it has not loaded the default
	// plugin yet (see Stats().NotReady). Retry shortly.
	ErrNotReady = peerrpc.ErrNotReady
	// ErrPrecondition: a deploy's precondition failed: the plugin exists
	// (a create), or its active module is not the one named (an upgrade's
	// If-Match). Nothing changed.
	ErrPrecondition = fsm.ErrPrecondition
	// ErrConflict: the request would replace something it does not name:
	// an upgrade to a module of another raftkv_info name. Nothing changed.
	ErrConflict = fsm.ErrConflict
	// ErrQuarantined: the plugin is quarantined (see QuarantinePlugin): its
	// commands and queries are refused until a module is deployed again.
	ErrQuarantined = fsm.ErrQuarantined
	// ErrForbidden: the peer that sent a forwarded request may not call that
	// method (see peerrpc): a trusted key that is not a member, or an
	// administrative request from a non-voter without the cluster token.
	ErrForbidden = peerrpc.ErrForbidden
	// ErrCorruptSnapshot: a snapshot or backup failed verification.
	ErrCorruptSnapshot = fsm.ErrCorruptSnapshot
)
