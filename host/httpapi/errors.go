package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host"
)

// httpError is an error this package detects itself, with its answer.
type httpError struct {
	Status  int
	Code    string
	Message string
}

func (e *httpError) Error() string { return e.Message }

var errUnauthorized = &httpError{Status: http.StatusUnauthorized, Code: "unauthorized",
	Message: "missing or invalid token: send Authorization: Bearer <token>"}

func badRequest(format string, args ...any) error {
	return &httpError{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) error {
	return &httpError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: fmt.Sprintf(format, args...)}
}

func unsupportedMedia(got, want string) error {
	if got == "" {
		got = "none"
	}
	return &httpError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
		Message: fmt.Sprintf("Content-Type %s is not accepted here (want %s)", got, want)}
}

// errorInfo is the answer to an error.
type errorInfo struct {
	status     int
	code       string
	message    string
	pluginCode int // meaningful when fromPlugin
	fromPlugin bool
	leader     string // the leader's ID, for not_leader and no_leader
	leaderURL  string // the leader's HTTP API URL, when it is known
}

// classify maps an error to its answer. It is the only place that does:
// host sentinels, plugin result codes, this package's own errors, body
// limits and context errors. Anything else is a 500.
func classify(err error) errorInfo {
	var (
		he  *httpError
		ae  *abi.Error
		mbe *http.MaxBytesError
	)
	e := errorInfo{status: http.StatusInternalServerError, code: "internal", message: err.Error()}
	switch {
	case errors.As(err, &he):
		e.status, e.code, e.message = he.Status, he.Code, he.Message
	case errors.As(err, &ae) && !errors.Is(err, host.ErrInvalid):
		// A plugin's result, unless the host refused the request for it (a
		// module whose raftkv_info or migration failed): that is ErrInvalid's.
		e.message, e.pluginCode, e.fromPlugin = ae.Message, int(ae.Code), true
		if e.message == "" {
			e.message = ae.Code.String()
		}
		switch {
		case ae.Code == abi.CodeBadRequest:
			e.status, e.code = http.StatusBadRequest, "bad_request"
		case ae.Code == abi.CodeNotFound:
			e.status, e.code = http.StatusNotFound, "not_found"
		case ae.Code == abi.CodeConflict:
			e.status, e.code = http.StatusConflict, "conflict"
		case ae.Code == abi.CodeTooLarge:
			e.status, e.code = http.StatusRequestEntityTooLarge, "too_large"
		case ae.Code == abi.CodeTrap:
			e.status, e.code = http.StatusInternalServerError, "trap"
		case ae.Code == abi.CodeOutOfFuel:
			e.status, e.code = http.StatusUnprocessableEntity, "out_of_fuel"
		case ae.Code == abi.CodeInternal || ae.Code >= 64 && ae.Code <= 255:
			e.status, e.code = http.StatusUnprocessableEntity, "plugin_error"
		default: // no_result, read_only, other host-assigned codes, codes above 255: a plugin bug
			e.status, e.code = http.StatusInternalServerError, "internal"
			if ae.Message != "" {
				e.message = ae.Code.String() + ": " + ae.Message
			}
		}
	case errors.As(err, &mbe):
		e.status, e.code = http.StatusRequestEntityTooLarge, "too_large"
		e.message = "request body exceeds the " + strconv.FormatInt(mbe.Limit, 10) + "-byte limit"
	case errors.Is(err, host.ErrNotLeader):
		e.status, e.code = http.StatusServiceUnavailable, "not_leader"
	case errors.Is(err, host.ErrDegraded):
		e.status, e.code = http.StatusServiceUnavailable, "degraded"
	case errors.Is(err, host.ErrNoLeader):
		e.status, e.code = http.StatusServiceUnavailable, "no_leader"
	case errors.Is(err, host.ErrNotReady):
		e.status, e.code = http.StatusServiceUnavailable, "not_ready"
	case errors.Is(err, host.ErrUnknownOutcome):
		e.status, e.code = http.StatusGatewayTimeout, "unknown_outcome"
	case errors.Is(err, host.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		e.status, e.code = http.StatusGatewayTimeout, "timeout"
	case errors.Is(err, host.ErrUnknownPlugin), errors.Is(err, host.ErrNotFound):
		e.status, e.code = http.StatusNotFound, "not_found"
	case errors.Is(err, host.ErrInvalid), errors.Is(err, host.ErrCorruptSnapshot):
		e.status, e.code = http.StatusBadRequest, "bad_request"
	case errors.Is(err, host.ErrForbidden):
		e.status, e.code = http.StatusForbidden, "forbidden"
	case errors.Is(err, host.ErrPrecondition):
		e.status, e.code = http.StatusPreconditionFailed, "precondition_failed"
	case errors.Is(err, host.ErrConflict):
		e.status, e.code = http.StatusConflict, "conflict"
	case errors.Is(err, host.ErrQuarantined):
		e.status, e.code = http.StatusServiceUnavailable, "quarantined"
	case errors.Is(err, host.ErrStopped), errors.Is(err, host.ErrClosed):
		e.status, e.code = http.StatusServiceUnavailable, "stopped"
	}
	return e
}

// write sends the error as JSON and returns its status.
func (e *errorInfo) write(w http.ResponseWriter) int {
	b := make([]byte, 0, 96+len(e.message))
	b = append(b, `{"error":{"code":`...)
	b = appendJSONString(b, e.code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.message)
	if e.fromPlugin {
		b = append(b, `,"plugin_code":`...)
		b = strconv.AppendInt(b, int64(e.pluginCode), 10)
	}
	if e.leader != "" {
		b = append(b, `,"leader":`...)
		b = appendJSONString(b, e.leader)
	}
	if e.leaderURL != "" {
		b = append(b, `,"leader_url":`...)
		b = appendJSONString(b, e.leaderURL)
	}
	b = append(b, "}}\n"...)
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	if e.leader != "" {
		h.Set("X-Raftkv-Leader", e.leader)
	}
	if e.leaderURL != "" {
		h.Set("X-Raftkv-Leader-Url", e.leaderURL)
	}
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="raftkv"`)
	}
	w.WriteHeader(e.status)
	w.Write(b)
	return e.status
}

// writeError answers a request with err. An error after the answer has
// started cannot change its status: the connection is aborted instead, so
// that the client never takes a truncated answer for a success.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if started(w) {
		a.log.Warn("httpapi: request failed after its answer started; aborting the connection",
			"method", r.Method, "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
	e := classify(err)
	if e.code == "not_leader" || e.code == "no_leader" {
		e.leader, _ = a.node.Leader()
	}
	if e.code == "no_leader" || (e.code == "not_leader" && (e.leader == "" || e.leader == a.node.ID())) {
		// No leader may be this node's own doing: a single node cannot
		// elect itself while it cannot record its vote (and a leader that
		// could not write its log steps down with the write in flight:
		// not_leader, with no other leader to name); a removed node hears
		// from no leader.
		if why := a.node.Degraded(); why != "" {
			e.code, e.message = "degraded", e.message+", and this node cannot write its Raft log: "+why
			if e.leader == a.node.ID() {
				e.leader = "" // not a leader to send a client to
			}
		} else if why := a.node.Removed(); why != "" && e.code == "no_leader" {
			e.message += ": " + why
		}
	}
	if e.code == "not_leader" || e.code == "no_leader" {
		if e.leader != "" && e.code == "not_leader" {
			e.leaderURL = a.node.LeaderAPIAddress()
			if e.leaderURL != "" {
				e.message += " (the leader is " + e.leader + " at " + e.leaderURL + ")"
			} else {
				_, addr := a.node.Leader()
				e.message += " (the leader is " + e.leader + ", Raft address " + addr + ")"
			}
		}
	}
	if e.status >= 500 && !isProbe(r.Pattern) { // a failed probe is an answer, not a failure (see readyz)
		a.log.Warn("httpapi: request failed", "method", r.Method, "path", r.URL.Path,
			"status", e.status, "code", e.code, "err", err)
	}
	e.write(w)
}

func itoa(i int) string { return strconv.Itoa(i) }
