package logstore

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/raft-wal/types"
)

// smallFS mounts a tmpfs of size bytes (needs root, as the chaos suite's
// full-disk fault does) and returns its path; it is unmounted at the end.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root)")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	return mnt
}

// fillUp writes path until its file system is full, then frees spare
// bytes of it.
func fillUp(t *testing.T, path string, spare int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	if spare > 0 {
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(st.Size() - spare); err != nil {
			t.Fatal(err)
		}
	}
}

// reopenCheck closes s, opens dir again and checks entries 1..last.
func reopenCheck(t *testing.T, s Store, dir string, segBytes int, last uint64) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _, err := Open(Config{Dir: dir, WALSegmentBytes: segBytes})
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer s.Close()
	if got, _ := s.LastIndex(); got != last {
		t.Fatalf("reopened: last index %d, want %d", got, last)
	}
	var l raft.Log
	for i := uint64(1); i <= last; i++ {
		if err := s.GetLog(i, &l); err != nil || l.Index != i {
			t.Fatalf("reopened: entry %d: %v", i, err)
		}
	}
}

// TestWALTailTruncationDiskFull: a tail truncation (a follower clearing a
// deposed leader's suffix) creates a new segment file; on a full file system
// raft-wal's Create leaves the empty file behind, and every later attempt,
// with space or without, failed with "file exists": the follower could
// never take the log again. The store must fail while the disk is full and
// succeed once space is freed, in the same process, and reopen with every
// entry.
func TestWALTailTruncationDiskFull(t *testing.T) {
	const segBytes = 1 << 20
	mnt := smallFS(t, "6m")
	dir := filepath.Join(mnt, "data")
	s, _, err := Open(Config{Dir: dir, Kind: WAL, WALSegmentBytes: segBytes})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 1, 100)
	filler := filepath.Join(mnt, "filler")
	fillUp(t, filler, 0)

	for try := 0; try < 3; try++ {
		err := s.DeleteRange(91, 100)
		if err == nil {
			t.Fatal("a tail truncation on a full disk succeeded: the test no longer fills the disk")
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("tail truncation %d on a full disk: %v, want ENOSPC", try, err)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(91, 100); err != nil {
		t.Fatalf("tail truncation once space is free: %v", err)
	}
	fill(t, s, 91, 120)
	reopenCheck(t, s, dir, segBytes, 120)
}

// TestWALRotationDiskFull: a full tail segment's rotation creates the next
// segment file in the background; on a full disk it fails, the tail stays
// sealed, and raft-wal refuses every later append ("segment is sealed")
// until the process restarts. The store must take appends again once space
// is freed, in the same process.
func TestWALRotationDiskFull(t *testing.T) {
	const segBytes = 1 << 20
	mnt := smallFS(t, "6m")
	dir := filepath.Join(mnt, "data")
	s, _, err := Open(Config{Dir: dir, Kind: WAL, WALSegmentBytes: segBytes})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 1, 100)
	filler := filepath.Join(mnt, "filler")
	fillUp(t, filler, 256<<10)

	// The segment has room (and the file system a little more for its
	// index block); the next segment does not.
	var last uint64 = 100
	var sealed bool
	for i := uint64(101); i < 2000; i++ {
		err := s.StoreLogs([]*raft.Log{{Index: i, Term: 1, Data: make([]byte, 1000)}})
		if err != nil {
			if !errors.Is(err, types.ErrSealed) && !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("append %d on a full disk: %v", i, err)
			}
			t.Logf("append %d on a full disk: %v", i, err)
			sealed = true
			break
		}
		last = i
	}
	if !sealed {
		t.Fatal("appends went on past a segment on a full disk: the test no longer fills the disk")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Raft sends the entries again until they are taken (the store tries
	// a reopen at most once a second).
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.StoreLogs([]*raft.Log{{Index: last + 1, Term: 1, Data: make([]byte, 1000)}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("append once space is free: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ws := s.(*walStore); ws.reopened == 0 {
		t.Fatal("the append went on without a reopen: the test no longer leaves the tail sealed")
	}
	fill(t, s, last+2, last+200)
	reopenCheck(t, s, dir, segBytes, last+200)
}
