package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// hclogAdapter lets hashicorp/raft log through the node's slog.Logger. Beyond
// the translation it does three things raft's own logger would not:
//
//   - it renders hclog's argument types (hclog.Format, Hex, Octal, Binary,
//     Quote) as hclog does, instead of printing their raw format strings;
//   - it logs an error or warning about one peer (a follower that is down
//     makes a leader log ~2.4 ERROR lines a second) once per repeatEvery:
//     the first occurrence as a warning (the peer may be restarting or
//     stopping: every node of a cluster stopped at once sees the others
//     go), later ones at debug level, counted, and the count goes with the
//     next occurrence after the interval, at raft's level ("repeated",
//     "over"); an error that has not occurred for repeatEvery starts anew;
//   - a connection error without a peer (raft's "failed to flush response"
//     to a peer that hung up) is a warning;
//   - while the node shuts down (see shuttingDown), errors that are the
//     expected result of closing connections — its own and its peers' — are
//     logged at debug level.
type hclogAdapter struct {
	l    *slog.Logger
	name string
	args []any
	sh   *hclogShared
}

// hclogShared is the state every logger derived with With or Named shares.
type hclogShared struct {
	closing atomic.Bool
	every   time.Duration // how often a repeated peer error is logged
	now     func() time.Time

	mu      sync.Mutex
	repeats map[string]*repeat // by logger name, message and peer
}

// repeat is a repeated peer error: when it was last logged and how many
// times it occurred since.
type repeat struct {
	logged     time.Time // last logged at its level
	seen       time.Time // last occurred
	suppressed int
}

// repeatEvery is how often a repeated peer error is logged.
const repeatEvery = 30 * time.Second

// maxRepeats bounds the table of repeated errors (one entry per message and
// peer; the peers are the cluster's members, so it stays small).
const maxRepeats = 256

func newHCLog(l *slog.Logger) *hclogAdapter {
	return &hclogAdapter{l: l, name: "raft", sh: &hclogShared{every: repeatEvery, now: time.Now, repeats: map[string]*repeat{}}}
}

// shuttingDown marks the node as closing: from now on, raft's complaints
// about connections that end are expected.
func (h *hclogAdapter) shuttingDown() { h.sh.closing.Store(true) }

func (h *hclogAdapter) emit(level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	if level >= slog.LevelWarn && h.sh.closing.Load() && connectionError(args) {
		level = slog.LevelDebug // our own shutdown closing connections, or a peer's
	}
	if level >= slog.LevelWarn && isTransportShutdown(msg, args) {
		level = slog.LevelDebug
	}
	if l, ok := downgraded[msg]; ok && level > l {
		level = l
	}
	if level > slog.LevelInfo && isCompactedEntry(msg, args) {
		level = slog.LevelInfo
	}
	var extra []any
	if level >= slog.LevelWarn {
		peer, ok := peerOf(args)
		switch {
		case ok:
			switch n, since, first, log := h.sh.repeated(h.name + "\x00" + msg + "\x00" + peer); {
			case !log:
				level = slog.LevelDebug // counted; logged at debug level only
			case first:
				// A peer that was reachable until now: it may be restarting
				// or shutting down. It is an error once it lasts.
				level = min(level, slog.LevelWarn)
			default:
				extra = []any{"repeated", n, "over", since.Round(time.Second).String()}
			}
		case level > slog.LevelWarn && connectionError(args):
			// A connection a peer closed under a request it sent or
			// answered (raft's "failed to flush response"): the peer went
			// away, which its own errors report.
			level = slog.LevelWarn
		}
	}
	if !h.l.Enabled(ctx, level) {
		return
	}
	attrs := make([]any, 0, 2+len(h.args)+len(args)+len(extra))
	attrs = append(attrs, "component", h.name)
	attrs = appendArgs(attrs, h.args)
	attrs = appendArgs(attrs, args)
	attrs = append(attrs, extra...)
	h.l.Log(ctx, level, msg, attrs...)
}

// repeated records one occurrence of the error key and reports whether to
// log it and, if so, whether it is the first of an episode (no occurrence
// for repeatEvery before it), how many occurrences were not logged since the
// last logged one, and how long ago that was.
func (s *hclogShared) repeated(key string) (suppressed int, since time.Duration, first, log bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repeats[key]
	if r == nil || now.Sub(r.seen) > s.every {
		if r == nil && len(s.repeats) >= maxRepeats {
			clear(s.repeats)
		}
		s.repeats[key] = &repeat{logged: now, seen: now}
		return 0, 0, true, true
	}
	r.seen = now
	if since = now.Sub(r.logged); since < s.every {
		r.suppressed++
		return 0, 0, false, false
	}
	suppressed = r.suppressed
	r.logged, r.suppressed = now, 0
	return suppressed, since, false, true
}

// downgraded are raft's messages logged at a lower level than raft's own,
// because they are ordinary Raft events rather than errors of this node.
var downgraded = map[string]slog.Level{
	// A leader learning from a follower that a newer term began: another
	// node started an election (the leader was slow, partitioned, or handed
	// leadership over). The new leader logs its election; this is a warning.
	"peer has newer term, stopping replication": slog.LevelWarn,
}

// isCompactedEntry matches raft's leader reporting, at error level, that an
// entry a follower needs is no longer in its log (compacted into a
// snapshot): raft sends that follower the snapshot instead, which is how a
// new, restored or lagging member catches up. It is ordinary; a log read
// that fails otherwise stays an error.
func isCompactedEntry(msg string, args []any) bool {
	return msg == "failed to get log" && errorArg(args, raft.ErrLogNotFound)
}

// errorArg reports whether an argument is an error that is target
// (errors.Is).
func errorArg(args []any, target error) bool {
	for i := 0; i+1 < len(args); i += 2 {
		if err, ok := args[i+1].(error); ok && errors.Is(err, target) {
			return true
		}
	}
	return false
}

// peerKeys are the argument names raft gives the other node an error is
// about.
var peerKeys = map[string]bool{"peer": true, "target": true, "server-id": true}

// peerOf returns the peer an error is about, if any.
func peerOf(args []any) (string, bool) {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && peerKeys[k] {
			return fmt.Sprint(render(args[i+1])), true
		}
	}
	return "", false
}

// isTransportShutdown matches raft's NetworkTransport reporting, at error
// level, a request it was serving when its own transport shut down: the
// node is stopping, nothing is wrong.
func isTransportShutdown(msg string, args []any) bool {
	return msg == "failed to decode incoming command" && errorArg(args, raft.ErrTransportShutdown)
}

// connectionError reports whether an "error" argument is a connection that
// ended or could not be made: what peers see while nodes shut down.
func connectionError(args []any) bool {
	for i := 0; i+1 < len(args); i += 2 {
		err, ok := args[i+1].(error)
		if !ok {
			continue
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
			errors.Is(err, raft.ErrTransportShutdown), errors.Is(err, raft.ErrPipelineShutdown),
			errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
			return true
		}
		// Errors that crossed the SSH transport or raft's codec keep only
		// their text.
		s := err.Error()
		for _, sub := range []string{"EOF", "use of closed network connection", "connection refused",
			"connection reset", "broken pipe", "transport shutdown"} {
			if strings.Contains(s, sub) {
				return true
			}
		}
	}
	return false
}

// appendArgs appends hclog key-value pairs as slog arguments: values
// rendered, keys with spaces ("backoff time") joined with underscores, and a
// value without a key named EXTRA_VALUE_AT_END, as hclog does.
func appendArgs(dst, args []any) []any {
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			dst = append(dst, "EXTRA_VALUE_AT_END", render(args[i]))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		dst = append(dst, strings.ReplaceAll(key, " ", "_"), render(args[i+1]))
	}
	return dst
}

// render formats hclog's special argument types as hclog's own logger does.
func render(v any) any {
	switch v := v.(type) {
	case hclog.Format:
		if len(v) == 0 {
			return ""
		}
		if f, ok := v[0].(string); ok {
			return fmt.Sprintf(f, v[1:]...)
		}
		return fmt.Sprint(v...)
	case hclog.Hex:
		return "0x" + strconv.FormatInt(int64(v), 16)
	case hclog.Octal:
		return "0" + strconv.FormatInt(int64(v), 8)
	case hclog.Binary:
		return "0b" + strconv.FormatInt(int64(v), 2)
	case hclog.Quote:
		return strconv.Quote(string(v))
	case hclog.CapturedStacktrace:
		return string(v)
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	}
	return v
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	h.emit(slogLevel(level), msg, args...)
}
func (h *hclogAdapter) Trace(msg string, args ...any) { h.emit(slog.LevelDebug-4, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...any) { h.emit(slog.LevelDebug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...any)  { h.emit(slog.LevelInfo, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...any)  { h.emit(slog.LevelWarn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...any) { h.emit(slog.LevelError, msg, args...) }
func (h *hclogAdapter) IsTrace() bool {
	return h.l.Enabled(context.Background(), slog.LevelDebug-4)
}
func (h *hclogAdapter) IsDebug() bool      { return h.l.Enabled(context.Background(), slog.LevelDebug) }
func (h *hclogAdapter) IsInfo() bool       { return h.l.Enabled(context.Background(), slog.LevelInfo) }
func (h *hclogAdapter) IsWarn() bool       { return h.l.Enabled(context.Background(), slog.LevelWarn) }
func (h *hclogAdapter) IsError() bool      { return h.l.Enabled(context.Background(), slog.LevelError) }
func (h *hclogAdapter) ImpliedArgs() []any { return h.args }
func (h *hclogAdapter) With(args ...any) hclog.Logger {
	return &hclogAdapter{l: h.l, name: h.name, args: append(append([]any{}, h.args...), args...), sh: h.sh}
}
func (h *hclogAdapter) Name() string { return h.name }
func (h *hclogAdapter) Named(name string) hclog.Logger {
	return &hclogAdapter{l: h.l, name: h.name + "." + name, args: h.args, sh: h.sh}
}
func (h *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{l: h.l, name: name, args: h.args, sh: h.sh}
}
func (h *hclogAdapter) SetLevel(hclog.Level) {}
func (h *hclogAdapter) GetLevel() hclog.Level {
	switch {
	case h.IsTrace():
		return hclog.Trace
	case h.IsDebug():
		return hclog.Debug
	case h.IsInfo():
		return hclog.Info
	case h.IsWarn():
		return hclog.Warn
	}
	return hclog.Error
}
func (h *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelInfo)
}
func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		h.Info(strings.TrimSuffix(string(p), "\n"))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}
