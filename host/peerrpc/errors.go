package peerrpc

import (
	"errors"

	"github.com/raftkv/raftkv/host/logstore"
	"github.com/raftkv/raftkv/internal/fsm"
)

// The errors that keep their identity across the wire. Package host
// re-exports each under the same name (host.ErrNotLeader is ErrNotLeader)
// and documents what it means to a caller of a Node; those the state
// machine or the log store returns are theirs.
var (
	// ErrForbidden is wrapped by every refusal of Authorize.
	ErrForbidden = errors.New("raftkv: forbidden")
	// ErrNotLeader: the node (or the node a request was forwarded to) is
	// not the leader; nothing was proposed.
	ErrNotLeader = errors.New("raftkv: not leader")
	// ErrNoLeader: no leader is known.
	ErrNoLeader = errors.New("raftkv: no leader")
	// ErrUnknownOutcome: a write may or may not have been committed.
	ErrUnknownOutcome = errors.New("raftkv: leadership lost, write outcome unknown")
	// ErrClosed: the node is shut down.
	ErrClosed = errors.New("raftkv: node closed")
	// ErrNotReady: the node is starting.
	ErrNotReady = errors.New("raftkv: not ready")
)

// Code is an error's identity on the wire. The values are fixed: a node
// of another version decodes the same code to the same error.
type Code int

// The codes. 0 is no error; CodeOther an error without an identity (its
// message is all there is).
const (
	CodeOther          Code = -1
	CodeNotLeader      Code = 1
	CodeNoLeader       Code = 2
	CodeTimeout        Code = 3
	CodeUnknownOutcome Code = 4
	CodeUnknownPlugin  Code = 5
	CodeInvalid        Code = 6
	CodeClosed         Code = 7
	CodeStopped        Code = 8
	CodeNotFound       Code = 9
	CodeNotReady       Code = 10
	CodePrecondition   Code = 11
	CodeConflict       Code = 12
	CodeQuarantined    Code = 13
	CodeForbidden      Code = 14
	CodeDegraded       Code = 15
)

// codes are the errors that keep their identity across forwarding, by
// their code, in the order EncodeErr tries them.
var codes = []struct {
	code Code
	err  error
}{
	// Degraded first: its errors may also say that no leader is known.
	{CodeDegraded, logstore.ErrWriteFailing},
	{CodeNotLeader, ErrNotLeader}, {CodeNoLeader, ErrNoLeader}, {CodeTimeout, fsm.ErrTimeout},
	{CodeUnknownOutcome, ErrUnknownOutcome}, {CodeUnknownPlugin, fsm.ErrUnknownPlugin},
	{CodeInvalid, fsm.ErrInvalid}, {CodeClosed, ErrClosed}, {CodeStopped, fsm.ErrStopped},
	{CodeNotFound, fsm.ErrNotFound}, {CodeNotReady, ErrNotReady}, {CodePrecondition, fsm.ErrPrecondition},
	{CodeConflict, fsm.ErrConflict}, {CodeQuarantined, fsm.ErrQuarantined}, {CodeForbidden, ErrForbidden},
}

// EncodeErr returns err's code and message, as a Response carries them
// (CodeOther if err matches none of the coded errors).
func EncodeErr(err error) (int, string) {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return int(c.code), err.Error()
		}
	}
	return int(CodeOther), err.Error()
}

// DecodeErr rebuilds an error from its code and message: errors.Is still
// matches the code's error, and the message is the sender's.
func DecodeErr(code int, msg string) error {
	for _, c := range codes {
		if int(c.code) == code {
			return &remoteErr{c.err, msg}
		}
	}
	return errors.New(msg)
}

// remoteErr is an error that crossed the wire.
type remoteErr struct {
	sentinel error
	msg      string
}

func (e *remoteErr) Error() string { return e.msg }
func (e *remoteErr) Unwrap() error { return e.sentinel }
