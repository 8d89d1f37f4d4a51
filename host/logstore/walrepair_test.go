package logstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/types"
)

// failingMeta is raft-wal's metadata store whose commits fail while fail is
// set, as on a full disk, or as if the process died before them.
type failingMeta struct {
	metadb.BoltMetaDB
	fail atomic.Bool
}

func (m *failingMeta) CommitState(st types.PersistentState) error {
	if m.fail.Load() {
		return errors.New("injected metadata commit failure")
	}
	return m.BoltMetaDB.CommitState(st)
}

// TestWALInterruptedRotation: a WAL whose tail segment was sealed but whose
// rotation was never committed (here the metadata commit fails; a SIGKILL
// between the two steps leaves the same files, which TestCrashWAL in
// internal/crashtest hits) cannot append after a plain raft-wal reopen
// ("segment is sealed", forever). Open completes the rotation: every entry
// is there and appends go on.
func TestWALInterruptedRotation(t *testing.T) {
	const segBytes = 64 << 10
	dir := t.TempDir()
	path := filepath.Join(dir, WALDir)
	meta := &failingMeta{}
	w, err := wal.Open(mkdir(t, path), wal.WithMetaStore(meta), wal.WithSegmentSize(segBytes))
	if err != nil {
		t.Fatal(err)
	}
	meta.fail.Store(true)
	var last uint64
	for i := uint64(1); i < 1000; i++ {
		if err := w.StoreLogs([]*raft.Log{entry(i)}); err != nil {
			if !errors.Is(err, types.ErrSealed) {
				t.Fatalf("append %d: %v, want raft-wal's ErrSealed once the rotation failed", i, err)
			}
			break
		}
		last = i
	}
	if last == 0 || last == 999 {
		t.Fatalf("appended %d entries: the segment never filled or never failed", last)
	}
	w.Close()

	// raft-wal alone: the log reads, and never takes another entry.
	w, err = wal.Open(path, wal.WithSegmentSize(segBytes))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.StoreLogs([]*raft.Log{entry(last + 1)}); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("raft-wal reopened after an interrupted rotation appends (%v): the repair in walrepair.go may no longer be needed", err)
	}
	w.Close()

	s, kind, err := Open(Config{Dir: dir, WALSegmentBytes: segBytes})
	if err != nil || kind != WAL {
		t.Fatalf("Open = %s, %v", kind, err)
	}
	for i := last + 1; i <= last+500; i++ { // past another rotation
		if err := s.StoreLogs([]*raft.Log{entry(i)}); err != nil {
			t.Fatalf("append %d after the repair: %v", i, err)
		}
	}
	s.Close()
	s, _, err = Open(Config{Dir: dir, WALSegmentBytes: segBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if first, _ := s.FirstIndex(); first != 1 {
		t.Fatalf("first index %d, want 1", first)
	}
	if l, _ := s.LastIndex(); l != last+500 {
		t.Fatalf("last index %d, want %d", l, last+500)
	}
	var l raft.Log
	for i := uint64(1); i <= last+500; i++ {
		if err := s.GetLog(i, &l); err != nil || string(l.Data) != string(entry(i).Data) {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
}

func entry(i uint64) *raft.Log {
	return &raft.Log{Index: i, Term: 1, Data: []byte(strings.Repeat(string(rune('a'+i%26)), 1000))}
}

func mkdir(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(path, 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}
