package client

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels an *Error matches with errors.Is, by its API code.
var (
	ErrBadRequest     = errors.New("raftkv: bad request")           // 400 bad_request
	ErrUnauthorized   = errors.New("raftkv: unauthorized")          // 401 unauthorized
	ErrNotFound       = errors.New("raftkv: not found")             // 404 not_found
	ErrConflict       = errors.New("raftkv: conflict")              // 409 conflict
	ErrPrecondition   = errors.New("raftkv: precondition failed")   // 412 precondition_failed
	ErrTooLarge       = errors.New("raftkv: too large")             // 413 too_large
	ErrPluginError    = errors.New("raftkv: plugin error")          // 422 plugin_error
	ErrTrap           = errors.New("raftkv: plugin trapped")        // 500 trap
	ErrNoLeader       = errors.New("raftkv: no leader")             // 503 no_leader
	ErrNotLeader      = errors.New("raftkv: not the leader")        // 503 not_leader
	ErrStopped        = errors.New("raftkv: node stopped")          // 503 stopped
	ErrTimeout        = errors.New("raftkv: timeout")               // 504 timeout
	ErrUnknownOutcome = errors.New("raftkv: outcome unknown")       // 504 unknown_outcome, or the connection failed after a write was sent
	ErrNoEndpoints    = errors.New("raftkv: no endpoints")          // Config.Endpoints is empty
	ErrBadEndpoint    = errors.New("raftkv: bad endpoint")          // an endpoint is not http(s)://host:port
	ErrUnavailable    = errors.New("raftkv: no node answered")      // every attempt failed to connect
	ErrBadAnswer      = errors.New("raftkv: answer not understood") // a 2xx answer this package cannot decode
)

// API error codes (docs/api.md).
const (
	CodeBadRequest     = "bad_request"
	CodeUnauthorized   = "unauthorized"
	CodeNotFound       = "not_found"
	CodeConflict       = "conflict"
	CodePrecondition   = "precondition_failed"
	CodeTooLarge       = "too_large"
	CodePluginError    = "plugin_error"
	CodeTrap           = "trap"
	CodeInternal       = "internal"
	CodeNoLeader       = "no_leader"
	CodeNotLeader      = "not_leader"
	CodeStopped        = "stopped"
	CodeNotReady       = "not_ready"
	CodeTimeout        = "timeout"
	CodeUnknownOutcome = "unknown_outcome"
)

var sentinels = map[string]error{
	CodeBadRequest: ErrBadRequest, CodeUnauthorized: ErrUnauthorized, CodeNotFound: ErrNotFound,
	CodeConflict: ErrConflict, CodePrecondition: ErrPrecondition, CodeTooLarge: ErrTooLarge, CodePluginError: ErrPluginError, CodeTrap: ErrTrap,
	CodeNoLeader: ErrNoLeader, CodeNotLeader: ErrNotLeader, CodeStopped: ErrStopped, CodeTimeout: ErrTimeout,
	CodeUnknownOutcome: ErrUnknownOutcome,
}

// Error is an error answer of the API, or a write whose connection failed
// after it was sent (Status 0, Code unknown_outcome, Err the network error).
type Error struct {
	Status        int    // the HTTP status; 0 when no answer came
	Code          string // the API's code, e.g. "not_found"; "" when the body was not the API's JSON error
	Message       string
	PluginCode    int // the plugin's result code, when HasPluginCode
	HasPluginCode bool
	Leader        string // the leader the node named (X-Raftkv-Leader), if any
	Endpoint      string // the node that answered (or did not)
	Err           error  // the underlying network error, for Status 0
	// AfterUnknownOutcome is set when an earlier attempt of the same call
	// may have been applied (it was retried after a 504 or a lost
	// connection): a not_found or conflict may then be that attempt's doing.
	AfterUnknownOutcome bool
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	switch {
	case e.Status == 0:
		return fmt.Sprintf("%s (%s)", msg, e.Code)
	case e.Code == "":
		return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
	case e.Code == CodePluginError && e.HasPluginCode:
		return fmt.Sprintf("%s (%s %d, HTTP %d)", msg, e.Code, e.PluginCode, e.Status)
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", msg, e.Code, e.Status)
}

// Is matches the sentinel of the error's code.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

func (e *Error) Unwrap() error { return e.Err }

// IsNotFound reports whether err is a 404 not_found answer.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports whether err is a 409 conflict answer (a failed
// compare-and-set).
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }
