package logstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"
)

// TestKinds: a new data directory gets the configured store (Bolt by
// default), a reopened one the store it has whatever the configuration says,
// and both stores keep logs and stable values across a reopen in the same
// process (raft-wal v0.4.0 left its meta database, and its file lock, open
// on Close: the reopen below waited for it forever).
func TestKinds(t *testing.T) {
	for _, tc := range []struct{ create, reopen, want string }{
		{"", WAL, Bolt},
		{WAL, "", WAL},
		{WAL, Bolt, WAL},
		{Bolt, WAL, Bolt},
	} {
		t.Run(tc.create+"-"+tc.reopen, func(t *testing.T) {
			dir := t.TempDir()
			s, kind, err := Open(Config{Dir: dir, Kind: tc.create})
			if err != nil {
				t.Fatal(err)
			}
			if kind != tc.want {
				t.Fatalf("new data directory with %q: got %s, want %s", tc.create, kind, tc.want)
			}
			logs := []*raft.Log{{Index: 1, Term: 1, Data: []byte("a")}, {Index: 2, Term: 1, Data: []byte("b")}}
			if err := s.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s, kind, err = Open(Config{Dir: dir, Kind: tc.reopen})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if kind != tc.want {
				t.Fatalf("reopened with %q: got %s, want the %s it was created with", tc.reopen, kind, tc.want)
			}
			var l raft.Log
			if err := s.GetLog(2, &l); err != nil || string(l.Data) != "b" {
				t.Fatalf("GetLog(2) = %+v, %v", l, err)
			}
			if last, err := s.LastIndex(); err != nil || last != 2 {
				t.Fatalf("LastIndex = %d, %v", last, err)
			}
			if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
				t.Fatalf("CurrentTerm = %d, %v", v, err)
			}
			// raft clears a monotonic store's log after installing a
			// snapshot; raft-wal refuses the gap a kept suffix would leave.
			m, ok := any(Watch(s)).(raft.MonotonicLogStore)
			if got := ok && m.IsMonotonic(); got != (kind == WAL) {
				t.Fatalf("the watched %s store is monotonic: %v, want %v", kind, got, kind == WAL)
			}
		})
	}
}

// TestAmbiguous: a data directory with both stores is refused rather than
// guessed at.
func TestAmbiguous(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(Config{Dir: dir, Kind: Bolt})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.MkdirAll(filepath.Join(dir, WALDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(Config{Dir: dir}); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("a data directory with both stores: %v, want ErrAmbiguous", err)
	}
}

// TestDamaged: a log whose files were damaged fails to open with an
// *OpenError that names the store's path and says what to do, never a
// panic, whichever file is hit: raft-wal's segment or meta database,
// raft-boltdb's file.
func TestDamaged(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		damage func(t *testing.T, dir string)
	}{
		{WAL, func(t *testing.T, dir string) { overwriteFile(t, dir, WALDir, ".wal", 0) }},
		{WAL, func(t *testing.T, dir string) { overwriteFile(t, dir, WALDir, ".wal", 4096) }},
		{WAL, func(t *testing.T, dir string) { overwriteFile(t, dir, WALDir, "wal-meta.db", 2*4096) }},
		{Bolt, func(t *testing.T, dir string) { overwriteFile(t, dir, "", BoltFile, 2*4096) }},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			dir := t.TempDir()
			s, _, err := Open(Config{Dir: dir, Kind: tc.kind, WALSegmentBytes: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			fill(t, s, 1, 400)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, dir)
			s, _, err = Open(Config{Dir: dir})
			if err == nil {
				s.Close()
				t.Fatal("a damaged log opened")
			}
			t.Log(err)
			var oe *OpenError
			if !errors.As(err, &oe) || !errors.Is(err, ErrDamaged) {
				t.Fatalf("got %T %v, want an *OpenError", err, err)
			}
			want := filepath.Join(dir, WALDir)
			if tc.kind == Bolt {
				want = filepath.Join(dir, BoltFile)
			}
			if oe.Path != want || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--join") {
				t.Fatalf("error %q: want it to name %s and say how to bring the node back", err, want)
			}
		})
	}
}

// fill appends entries from..to, in batches of 16, each of 1 KiB.
func fill(t testing.TB, s Store, from, to uint64) {
	t.Helper()
	var batch []*raft.Log
	for i := from; i <= to; i++ {
		batch = append(batch, &raft.Log{Index: i, Term: 1, Data: []byte(fmt.Sprintf("%d%01020d", i, 0))})
		if len(batch) == 16 || i == to {
			if err := s.StoreLogs(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// overwriteFile writes 64 KiB of 0xff at offset off of the first file under
// dir/sub whose name ends with suffix.
func overwriteFile(t *testing.T, dir, sub, suffix string, off int64) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) {
			f, err := os.OpenFile(filepath.Join(dir, sub, e.Name()), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			junk := make([]byte, 64<<10)
			for i := range junk {
				junk[i] = 0xff
			}
			if _, err := f.WriteAt(junk, off); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no file *%s in %s", suffix, filepath.Join(dir, sub))
}

// TestContainFault: a read through a mapping the kernel refuses (what
// BoltDB does when a damaged page pointer sends it past its mmap) becomes
// an ErrDamaged error instead of a fatal fault that kills the process.
func TestContainFault(t *testing.T) {
	mem, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_NONE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	var sink byte
	err = Contain(t.TempDir(), func() error {
		sink = mem[100]
		return nil
	})
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "panic: runtime error") {
		t.Fatalf("got %v (read %d), want a contained fault", err, sink)
	}
}

// TestGapAtSnapshot: raft's user snapshot restore (POST /v1/restore) puts
// its snapshot at an index no log entry has, and the next entries after it:
// the log has a gap there until compaction. Open must accept a gap at or
// below the latest snapshot (raft never reads there) and refuse one after
// it. Before SnapshotIndex existed, a node restarted after a restore could
// never start again.
func TestGapAtSnapshot(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 1, 20)
	fill(t, s, 22, 30) // 21 is the restored snapshot's index
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, err = Open(Config{Dir: dir, SnapshotIndex: 20})
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "entry 21") {
		t.Fatalf("gap after the snapshot: got %v, want ErrDamaged naming entry 21", err)
	}
	s, _, err = Open(Config{Dir: dir, SnapshotIndex: 21})
	if err != nil {
		t.Fatalf("gap at the snapshot's index: %v", err)
	}
	s.Close()
}
