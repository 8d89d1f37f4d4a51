package logstore

import (
	"errors"
	"fmt"
	"os"
	"time"

	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// rotatingMeta is raft-wal's own metadata store, with one step added to
// Load: it completes a segment rotation that a crash (or a failed metadata
// write) interrupted.
//
// raft-wal (v0.4.2) rotates a full tail segment in two steps: the last
// append writes the segment's index block (the file is now sealed), then a
// background goroutine commits the metadata that marks it sealed and adds a
// new tail. A process killed between the two, a Close racing the rotation
// (raft-wal's runRotate leaves it to recovery), or a metadata commit that
// fails (a full disk) leaves a tail that the metadata calls open and the
// file calls sealed. raft-wal's Open recovers that file as the tail, and
// every later append fails with "segment is sealed": the node can never
// write its log again. internal/crashtest found it (TestCrashWAL).
//
// Load detects that tail (the same recovery raft-wal runs on it reports it
// sealed) and commits what the rotation would have: the tail sealed at its
// last entry, and a new, empty tail after it, whose file raft-wal's Open
// creates (it handles a tail whose file does not exist yet, the state a
// crash right after a rotation's commit leaves). A sealed tail with no
// entries (a tail truncation's forced seal) is replaced by a new empty tail
// at the same base index. The metadata stays raft-wal's, in its format.
type rotatingMeta struct {
	metadb.BoltMetaDB
	segmentBytes int
	keepOpen     bool // Close leaves the database open (walStore closes it)
	repaired     bool // for tests: Load completed a rotation
}

// Close closes the metadata database unless keepOpen is set.
func (m *rotatingMeta) Close() error {
	if m.keepOpen {
		return nil
	}
	return m.BoltMetaDB.Close()
}

func (m *rotatingMeta) Load(dir string) (types.PersistentState, error) {
	st, err := m.BoltMetaDB.Load(dir)
	if err != nil || len(st.Segments) == 0 {
		return st, err
	}
	tail := st.Segments[len(st.Segments)-1]
	if !tail.SealTime.IsZero() {
		return st, nil
	}
	sealed, indexStart, last, err := inspectTail(dir, tail)
	if err != nil || !sealed {
		return st, err
	}
	now := time.Now()
	next := types.SegmentInfo{
		ID: st.NextSegmentID, BaseIndex: tail.BaseIndex, MinIndex: tail.BaseIndex,
		SizeLimit: uint32(m.segmentBytes), Codec: wal.CodecBinaryV1, CreateTime: now,
	}
	if last >= tail.MinIndex {
		tail.SealTime, tail.IndexStart, tail.MaxIndex = now, indexStart, last
		st.Segments[len(st.Segments)-1] = tail
		next.BaseIndex, next.MinIndex = last+1, last+1
		st.Segments = append(st.Segments, next)
	} else {
		st.Segments[len(st.Segments)-1] = next
	}
	st.NextSegmentID++
	if err := m.BoltMetaDB.CommitState(st); err != nil {
		return st, fmt.Errorf("completing an interrupted segment rotation: %w", err)
	}
	m.repaired = true
	return st, nil
}

// inspectTail runs raft-wal's recovery of a tail segment file and reports
// whether the file is sealed, where its index starts and its last index.
// A missing file is not sealed (raft-wal's Open creates it).
func inspectTail(dir string, tail types.SegmentInfo) (sealed bool, indexStart, last uint64, err error) {
	w, err := segment.NewFiler(dir, walfs.New()).RecoverTail(tail)
	if errors.Is(err, os.ErrNotExist) {
		return false, 0, 0, nil
	}
	if err != nil {
		return false, 0, 0, err
	}
	defer w.Close()
	sealed, indexStart, err = w.Sealed()
	return sealed, indexStart, w.LastIndex(), err
}
