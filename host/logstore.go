package host

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// The Raft log and stable store of a data directory.
const (
	// LogStoreWAL is hashicorp/raft-wal: append-only segment files and one
	// fsync per append. Consul's default log store.
	LogStoreWAL = "wal"
	// LogStoreBolt is hashicorp/raft-boltdb: a BoltDB file, two fsyncs per
	// append (pages, then the meta page).
	LogStoreBolt = "bolt"

	walDir                 = "raft-wal" // LogStoreWAL's directory in the data directory
	defaultWALSegmentBytes = 64 << 20   // raft-wal's own default
	boltFile               = "raft.db"  // LogStoreBolt's file
)

type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// openLogStore opens the data directory's Raft log and stable store: the one
// it already has, or a new one of the kind given ("" is LogStoreWAL).
//
// Raft waits for the leader's append before replicating an entry and for a
// follower's before acknowledging it, so the log's fsync latency is paid
// twice in every write's latency, and three nodes on one disk share its
// flushes. raft-wal's single fsync per append makes a write about 1.5x
// faster than BoltDB's two (see the note in scripts/bench.sh).
func openLogStore(dataDir, kind string, segmentBytes int) (logStore, string, error) {
	boltPath, walPath := filepath.Join(dataDir, boltFile), filepath.Join(dataDir, walDir)
	hasBolt, hasWAL := exists(boltPath), exists(walPath)
	switch {
	case hasBolt && hasWAL:
		return nil, "", fmt.Errorf("%s has both %s and %s: remove the one that is not in use", dataDir, boltFile, walDir)
	case hasBolt:
		kind = LogStoreBolt
	case hasWAL, kind == "":
		kind = LogStoreWAL
	}
	if kind == LogStoreBolt {
		s, err := raftboltdb.New(raftboltdb.Options{Path: boltPath})
		return s, kind, err
	}
	if err := os.MkdirAll(walPath, 0o700); err != nil {
		return nil, "", err
	}
	// raft-wal v0.4.0's Close leaves its meta database open, and with it
	// the file lock a reopen in this process would wait for forever (fixed
	// upstream after v0.4.0, in hashicorp/raft-wal#28): own it and close it.
	meta := &metadb.BoltMetaDB{}
	if segmentBytes == 0 {
		segmentBytes = defaultWALSegmentBytes
	}
	w, err := wal.Open(walPath, wal.WithMetaStore(meta), wal.WithSegmentSize(segmentBytes))
	if err != nil {
		meta.Close()
		return nil, "", err
	}
	return &walStore{w, meta}, kind, nil
}

type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (s *walStore) Close() error {
	return errors.Join(s.WAL.Close(), s.meta.Close())
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
