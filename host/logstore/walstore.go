package logstore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// A full disk and raft-wal (v0.4.2)
//
// raft-wal creates a segment file, preallocated to the segment size (64
// MiB), when the tail fills (a rotation, in the background), on a tail
// truncation (a follower clearing a deposed leader's suffix) and when a
// head truncation or a first append replaces an empty tail. It commits the
// metadata naming the new segment first, then creates the file. On a full
// disk the preallocation fails, and two things go wrong:
//
//   - The file stays, empty. raft-wal's in-memory state is not updated, so
//     its next attempt creates the same file again, with O_EXCL, and fails
//     with "file exists" — with space or without, until the process
//     restarts. cleanFS removes the file of a failed creation.
//   - The tail segment was already sealed (a rotation's last append, or a
//     truncation's forced seal) and nothing rotates it again: every append
//     fails with "segment is sealed" until the process restarts. walStore
//     then reopens the WAL in the process (raft-wal's recovery plus
//     walrepair.go's), at most once a second, keeping the old one for reads
//     until the new one is open.

// cleanFS is raft-wal's file system, except that a segment file whose
// creation fails is removed: nothing was ever written to it (raft-wal
// writes a segment only once its creation succeeded).
type cleanFS struct{ *walfs.FS }

func (c cleanFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	f, err := c.FS.Create(dir, name, size)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		if rerr := os.Remove(filepath.Join(dir, name)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return nil, errors.Join(err, rerr)
		}
	}
	return f, err
}

// reopenEvery is how often, at most, walStore reopens a WAL that refuses
// appends.
const reopenEvery = time.Second

// walStore is a raft-wal WAL that reopens itself when its tail stays
// sealed (see above). Every call holds mu for reading; a reopen holds it
// for writing. The metadata store stays open across reopens (raft-wal's
// Close would close it, and a second open of it in the process would wait
// for its file lock forever).
type walStore struct {
	dir          string
	segmentBytes int
	meta         *rotatingMeta

	mu       sync.RWMutex
	w        *wal.WAL
	tried    time.Time // the last reopen
	reopened int       // for tests: reopens that succeeded
}

func openWAL(path string, segmentBytes int) (*walStore, error) {
	s := &walStore{dir: path, segmentBytes: segmentBytes, meta: &rotatingMeta{segmentBytes: segmentBytes, keepOpen: true}}
	w, err := s.open()
	if err != nil {
		s.meta.BoltMetaDB.Close()
		return nil, err
	}
	s.w = w
	return s, nil
}

func (s *walStore) open() (*wal.WAL, error) {
	return wal.Open(s.dir, wal.WithMetaStore(s.meta), wal.WithSegmentSize(s.segmentBytes),
		wal.WithSegmentFiler(segment.NewFiler(s.dir, cleanFS{walfs.New()})))
}

// reopen replaces the WAL with a new one on the same files, unless one was
// tried within reopenEvery. It reports whether it did.
func (s *walStore) reopen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.tried) < reopenEvery {
		return false
	}
	s.tried = time.Now()
	w, err := s.open()
	if err != nil {
		return false
	}
	s.w.Close() // the metadata store stays open (keepOpen)
	s.w = w
	s.reopened++
	return true
}

func (s *walStore) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.FirstIndex()
}

func (s *walStore) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.LastIndex()
}

func (s *walStore) GetLog(index uint64, l *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.GetLog(index, l)
}

func (s *walStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *walStore) StoreLogs(ls []*raft.Log) error {
	err := s.storeLogs(ls)
	if errors.Is(err, types.ErrSealed) && s.reopen() {
		err = s.storeLogs(ls)
	}
	return err
}

func (s *walStore) storeLogs(ls []*raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.StoreLogs(ls)
}

func (s *walStore) DeleteRange(min, max uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.DeleteRange(min, max)
}

func (s *walStore) Set(k, v []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.Set(k, v)
}

func (s *walStore) Get(k []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.Get(k)
}

func (s *walStore) SetUint64(k []byte, v uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.SetUint64(k, v)
}

func (s *walStore) GetUint64(k []byte) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.GetUint64(k)
}

// IsMonotonic implements raft.MonotonicLogStore, as raft-wal does: raft
// then clears the log after installing a snapshot (raft-wal refuses an
// append that leaves a gap).
func (s *walStore) IsMonotonic() bool { return true }

// Close closes the WAL and its metadata store.
func (s *walStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.w.Close(), s.meta.BoltMetaDB.Close())
}
