package host

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/internal/logtest"
)

func TestHCLogRendersHCLogArguments(t *testing.T) {
	rec := logtest.New(slog.LevelDebug)
	h := newHCLog(rec.Logger())
	servers := []raft.Server{{ID: "n1", Address: "127.0.0.1:1"}}
	// What raft logs at start and while restoring a snapshot.
	h.Info("initial configuration", "index", 1, "servers", hclog.Fmt("%+v", servers))
	h.Info("snapshot network transfer progress", "read-bytes", 10, "percent-complete", hclog.Fmt("%0.2f%%", 12.5))
	h.With("mode", hclog.Octal(0o644)).Named("store").Warn("odd",
		"flags", hclog.Hex(255), "bits", hclog.Binary(5), "name", hclog.Quote(`a"b`), "backoff time", 10*time.Millisecond, "dangling")
	recs := rec.Records(nil)
	if len(recs) != 3 {
		t.Fatalf("%d records: %v", len(recs), recs)
	}
	want := []map[string]string{
		{"component": "raft", "index": "1", "servers": "[{Suffrage:Voter ID:n1 Address:127.0.0.1:1}]"},
		{"component": "raft", "read-bytes": "10", "percent-complete": "12.50%"},
		{"component": "raft.store", "mode": "0644", "flags": "0xff", "bits": "0b101", "name": `"a\"b"`,
			"backoff_time": "10ms", "EXTRA_VALUE_AT_END": "dangling"},
	}
	for i, w := range want {
		for k, v := range w {
			if got := recs[i].Attrs[k]; got != v {
				t.Errorf("record %d (%s): %s = %q, want %q", i, recs[i].Message, k, got, v)
			}
		}
		for k, v := range recs[i].Attrs {
			if strings.Contains(v, "%") && !strings.HasSuffix(v, "%") {
				t.Errorf("record %d: %s = %q: a raw format string", i, k, v)
			}
		}
	}
}

func TestHCLogRepeatedPeerErrors(t *testing.T) {
	rec := logtest.New(slog.LevelDebug)
	h := newHCLog(rec.Logger())
	now := time.Unix(1000, 0)
	h.sh.now = func() time.Time { return now }
	down := errors.New("transport: connect to 127.0.0.1:9 (node \"n2\"): dial tcp: connect: connection refused")
	// A leader with a follower down: ~2.4 errors a second for 40 s.
	for range 96 {
		h.Error("failed to heartbeat to", "peer", "127.0.0.1:9", "backoff time", 500*time.Millisecond, "error", down)
		h.Error("failed to appendEntries to", "peer", raft.Server{ID: "n2", Address: "127.0.0.1:9"}, "error", down)
		now = now.Add(time.Second * 10 / 24)
	}
	h.Error("failed to heartbeat to", "peer", "127.0.0.1:10", "error", down) // another peer: its own count
	errs := rec.Records(logtest.AtLeast(slog.LevelWarn))
	var lines []string
	for _, r := range errs {
		lines = append(lines, r.String())
	}
	// 96 occurrences over 40 s of each: the first as a warning, then an
	// error with the count after 30 s; and the other peer's first.
	if len(errs) != 5 {
		t.Fatalf("%d lines at warn or above, want 5:\n%s", len(errs), strings.Join(lines, "\n"))
	}
	if errs[0].Attrs["repeated"] != "" || errs[0].Level != slog.LevelWarn || errs[2].Level != slog.LevelError ||
		errs[2].Attrs["repeated"] != "72" || errs[2].Attrs["over"] != "30s" || errs[4].Level != slog.LevelWarn {
		t.Fatalf("counts:\n%s", strings.Join(lines, "\n"))
	}
	// Quiet for longer than the interval: the next failure starts anew.
	now = now.Add(time.Minute)
	h.Error("failed to heartbeat to", "peer", "127.0.0.1:9", "error", down)
	if last := rec.Records(nil); last[len(last)-1].Level != slog.LevelWarn || last[len(last)-1].Attrs["repeated"] != "" {
		t.Fatalf("after a quiet minute: %v", last[len(last)-1])
	}
	if n := len(rec.Records(func(r logtest.Record) bool { return r.Level == slog.LevelDebug })); n != 2*96-4 {
		t.Fatalf("%d repeats at debug level, want %d", n, 2*96-4)
	}
}

func TestHCLogShutdownErrorsAreDebug(t *testing.T) {
	rec := logtest.New(slog.LevelDebug)
	h := newHCLog(rec.Logger())
	eof := fmt.Errorf("write ssh 127.0.0.1:1->127.0.0.1:2: %w", io.EOF)
	// Raft's transport answering a request it served when it shut down:
	// never an error.
	h.Error("failed to decode incoming command", "error", raft.ErrTransportShutdown)
	// A peer's connection ending while this node runs: an error.
	h.Error("failed to heartbeat to", "peer", "127.0.0.1:2", "error", eof)
	h.shuttingDown()
	// While it shuts down: expected.
	h.Error("failed to appendEntries to", "peer", "127.0.0.1:3", "error", eof)
	h.Named("x").Error("failed to pipeline appendEntries", "peer", "127.0.0.1:4", "error", errors.New("EOF"))
	// A deposed leader learning of the new term: a warning.
	h.Error("peer has newer term, stopping replication", "peer", "127.0.0.1:5")
	// A peer hanging up on an answer: a warning.
	h.shutdownForTest(false)
	h.Error("failed to flush response", "error", eof)
	// An entry compacted into a snapshot: raft sends the snapshot.
	h.Error("failed to get log", "index", 7, "error", raft.ErrLogNotFound)
	// Other errors stay errors.
	h.Error("failed to get log", "index", 8, "error", errors.New("checksum mismatch"))
	h.Error("failed to persist vote", "error", errors.New("disk full"))
	var got []string
	for _, r := range rec.Records(nil) {
		got = append(got, r.Level.String()+" "+r.Message)
	}
	want := []string{"DEBUG failed to decode incoming command", "WARN failed to heartbeat to",
		"DEBUG failed to appendEntries to", "DEBUG failed to pipeline appendEntries",
		"WARN peer has newer term, stopping replication", "WARN failed to flush response",
		"INFO failed to get log", "ERROR failed to get log", "ERROR failed to persist vote"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func (h *hclogAdapter) shutdownForTest(on bool) { h.sh.closing.Store(on) }
