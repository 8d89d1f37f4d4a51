// Package logstore opens the Raft log and stable store of a raftkv data
// directory: hashicorp/raft-boltdb (Kind Bolt, the default) or
// hashicorp/raft-wal (Kind WAL). A data directory keeps the kind it was
// created with.
//
// # The default, and why
//
// The crash-injection test (internal/crashtest) runs a child process that
// appends, head-truncates (compaction), tail-truncates (a deposed leader's
// suffix) and wipes the log (a snapshot install) at random, kills it with
// SIGKILL at random points, reopens the store and checks that every
// acknowledged entry is there and no deleted one comes back.
//
//   - raft-boltdb passes it as it is.
//   - raft-wal v0.4.0 fails it at once: a tail truncation leaves a sealed
//     segment without its index block, and the next open fails ("sealed
//     segment has no index block", hashicorp/raft-wal#31, fixed in v0.4.1).
//   - raft-wal v0.4.2, the version pinned here, fails it too, within a few
//     dozen kills: a kill between sealing a full segment and committing the
//     rotation's metadata leaves a tail that every later append refuses
//     ("segment is sealed"), on every restart. A failed metadata commit (a
//     full disk) or a Close racing the rotation does the same. Open
//     completes such a rotation (walrepair.go); with that, raft-wal passes.
//
// raft-wal is faster: one fsync per append where BoltDB does two.
// BenchmarkAppend measured 2.2x to 5.7x the single-entry appends per
// second (a loaded and a quiet disk) and a 4 MB entry (a plugin deploy) in
// a fifth of the time, scripts/bench.sh 2.3x the writes per
// second of one client and 1.4x with 64 on a 3-node cluster
// (docs/operations.md has the figures). But its own README calls it
// experimental, neither Consul nor Nomad make it their default, and it
// needed a repair written here to pass the test. The default is BoltDB:
// what the cluster acknowledged must survive a crash first. --log-store
// wal trades that margin for speed, with the repair and the same test.
//
// A full disk: raft-wal creates a 64 MiB segment file for a rotation and for
// a truncation; when it does not fit, raft-wal v0.4.2 leaves the empty file
// (every retry then fails with "file exists") or a sealed tail that refuses
// every append, until the process restarts. walstore.go removes the file of
// a failed creation and reopens a WAL whose tail stays sealed, so that the
// store takes the log again once space is freed (TestWALTailTruncationDiskFull,
// TestWALRotationDiskFull).
//
// The test covers a process crash: the kernel keeps what the killed process
// wrote. A power loss, or a disk that lies about fsync, is not tested.
//
// # Damage
//
// Open reads every entry between the first and the last index before it
// returns, so that a damaged log fails here, with an error naming its path
// and what to do (an *OpenError, errors.Is ErrDamaged), instead of as a
// panic inside raft.NewRaft. A panic raised while a store opens or reads is
// turned into the same error; Contain does it for Raft's own reads.
package logstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Kinds of store.
const (
	// Bolt is hashicorp/raft-boltdb: a BoltDB B+tree file, two fsyncs per
	// append (the pages, then the meta page). The default.
	Bolt = "bolt"
	// WAL is hashicorp/raft-wal: append-only segment files, one fsync per
	// append.
	WAL = "wal"
)

// Names in the data directory.
const (
	WALDir   = "raft-wal" // WAL's directory
	BoltFile = "raft.db"  // Bolt's file
)

// DefaultWALSegmentBytes is the size of a WAL segment file (raft-wal's own
// default). Head truncation deletes whole segments.
const DefaultWALSegmentBytes = 64 << 20

// Errors.
var (
	// ErrDamaged: the log's files exist but cannot be read back (an
	// *OpenError says which and what to do).
	ErrDamaged = errors.New("raftkv: the Raft log is damaged")
	// ErrAmbiguous: the data directory holds both kinds of store.
	ErrAmbiguous = errors.New("raftkv: the data directory has both a raft-wal and a raft-boltdb log")
)

// Store is a Raft log and stable store.
type Store interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// Config says where the store is and what a new one is.
type Config struct {
	// Dir is the data directory.
	Dir string
	// Kind is the store a new data directory gets: Bolt ("" too) or WAL.
	// A data directory keeps the kind it has.
	Kind string
	// WALSegmentBytes is the segment size of a WAL store (0: the default).
	WALSegmentBytes int
	// SnapshotIndex is the index of the data directory's latest snapshot
	// (0: none). Open checks the entries after it: raft starts from the
	// snapshot and never reads the log at or below its index, where a gap
	// is normal (a user snapshot restore installs its snapshot at an index
	// that no log entry has).
	SnapshotIndex uint64
}

// Validate reports the first configuration error.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("raftkv: logstore: Dir is required")
	case c.Kind != "" && c.Kind != WAL && c.Kind != Bolt:
		return fmt.Errorf("raftkv: logstore: kind %q: want %q or %q", c.Kind, WAL, Bolt)
	case c.WALSegmentBytes < 0 || c.WALSegmentBytes > 1<<30:
		return errors.New("raftkv: logstore: WALSegmentBytes must be in [0, 1 GiB]")
	}
	return nil
}

// OpenError is a log that exists and cannot be opened or read.
type OpenError struct {
	Path string // the store's file or directory
	Err  error
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("raftkv: the Raft log %s cannot be read: %v. The node cannot start from it: "+
		"if the cluster has other members, remove this node ('raftkv remove ID' on a member), move its data dir aside "+
		"and start it again with an empty data dir and --join; a single-node cluster starts anew and loads its last "+
		"backup ('raftkv restore'). Keep the damaged files for diagnosis", e.Path, e.Err)
}

func (e *OpenError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrDamaged) true.
func (e *OpenError) Is(target error) bool { return target == ErrDamaged }

// Open opens the data directory's store, the one it has or a new one of
// cfg.Kind, and checks that every entry of its log can be read. It returns
// the store and its kind.
func Open(cfg Config) (_ Store, kind string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, "", err
	}
	boltPath, walPath := filepath.Join(cfg.Dir, BoltFile), filepath.Join(cfg.Dir, WALDir)
	hasBolt, hasWAL := exists(boltPath), exists(walPath)
	switch {
	case hasBolt && hasWAL:
		return nil, "", fmt.Errorf("%w: %s and %s; remove the one that is not in use", ErrAmbiguous, boltPath, walPath)
	case hasBolt:
		kind = Bolt
	case hasWAL:
		kind = WAL
	case cfg.Kind == "":
		kind = Bolt
	default:
		kind = cfg.Kind
	}
	path := walPath
	if kind == Bolt {
		path = boltPath
	}
	var s Store
	err = contain(func() error {
		var err error
		s, err = open(kind, path, cfg.WALSegmentBytes)
		return err
	})
	if err != nil {
		if environmental(err) {
			return nil, "", fmt.Errorf("raftkv: opening the Raft log %s: %w", path, err)
		}
		return nil, "", &OpenError{Path: path, Err: err}
	}
	if err := contain(func() error { return Verify(s, cfg.SnapshotIndex) }); err != nil {
		s.Close()
		return nil, "", &OpenError{Path: path, Err: err}
	}
	return s, kind, nil
}

func open(kind, path string, segmentBytes int) (Store, error) {
	if kind == Bolt {
		return raftboltdb.New(raftboltdb.Options{Path: path})
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, err
	}
	if segmentBytes == 0 {
		segmentBytes = DefaultWALSegmentBytes
	}
	return openWAL(path, segmentBytes)
}

// Verify reads every entry after index after (the latest snapshot's), or
// from the first index if that is later, to the last and checks that each
// has the index it is stored under.
func Verify(s raft.LogStore, after uint64) error {
	first, err := s.FirstIndex()
	if err != nil {
		return fmt.Errorf("first index: %w", err)
	}
	last, err := s.LastIndex()
	if err != nil {
		return fmt.Errorf("last index: %w", err)
	}
	if first == 0 && last == 0 {
		return nil
	}
	if first == 0 || first > last {
		return fmt.Errorf("first index %d, last index %d", first, last)
	}
	var l raft.Log
	for i := max(first, after+1); i <= last; i++ {
		if err := s.GetLog(i, &l); err != nil {
			return fmt.Errorf("entry %d (log %d..%d): %w", i, first, last, err)
		}
		if l.Index != i {
			return fmt.Errorf("entry %d (log %d..%d) says it is entry %d", i, first, last, l.Index)
		}
	}
	return nil
}

// contain runs f and turns a panic in it into an error: the stores, and raft
// itself, panic on some damage they find. BoltDB reads its file through
// mmap: a damaged page pointer makes it read past the mapping, a fault the
// runtime would make fatal; here it panics, and is contained too.
func contain(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = panicError{r}
		}
	}()
	return f()
}

// panicError is a panic raised while opening or reading a log.
type panicError struct{ v any }

func (e panicError) Error() string        { return fmt.Sprintf("panic: %v", e.v) }
func (e panicError) Is(target error) bool { return target == ErrDamaged }

// Contain runs f, which opens or reads a log (raft.NewRaft does both), and
// turns a panic in it into an *OpenError for the data directory's store.
func Contain(dir string, f func() error) error {
	err := contain(f)
	if err == nil || !errors.Is(err, ErrDamaged) {
		return err
	}
	path := filepath.Join(dir, BoltFile)
	if exists(filepath.Join(dir, WALDir)) {
		path = filepath.Join(dir, WALDir)
	}
	return &OpenError{Path: path, Err: err}
}

// environmental reports whether err is the file system refusing (no
// permission, no space, read-only), not the log's content.
func environmental(err error) bool {
	for _, e := range []error{fs.ErrPermission, syscall.ENOSPC, syscall.EROFS, syscall.EDQUOT, syscall.EMFILE, syscall.ENFILE} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
