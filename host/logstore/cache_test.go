package logstore

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
)

// countingStore counts the reads that reach the store.
type countingStore struct {
	*raft.InmemStore
	reads int
}

func (s *countingStore) GetLog(index uint64, log *raft.Log) error {
	s.reads++
	return s.InmemStore.GetLog(index, log)
}

func entries(from, to uint64, size int) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1, Data: bytes.Repeat([]byte{byte(i)}, size)})
	}
	return out
}

// get reads index through c and reports whether the store was read.
func get(t *testing.T, c *Cache, s *countingStore, index uint64) (fromStore bool) {
	t.Helper()
	before := s.reads
	var l raft.Log
	if err := c.GetLog(index, &l); err != nil {
		t.Fatalf("GetLog(%d): %v", index, err)
	}
	if l.Index != index || len(l.Data) == 0 || l.Data[0] != byte(index) {
		t.Fatalf("GetLog(%d) returned entry %d (%d bytes)", index, l.Index, len(l.Data))
	}
	return s.reads > before
}

// TestCacheBounds: the cache holds the last entries within both bounds,
// serves them without reading the store, and reads the store for the rest.
func TestCacheBounds(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	c := NewCache(s, 8, 4<<10)

	// Small entries: the entry bound holds.
	if err := c.StoreLogs(entries(1, 20, 10)); err != nil {
		t.Fatal(err)
	}
	if n, b := c.Cached(); n != 8 || b != 80 {
		t.Fatalf("cached %d entries, %d bytes; want 8, 80", n, b)
	}
	for i := uint64(1); i <= 20; i++ {
		if got, want := get(t, c, s, i), i <= 12; got != want {
			t.Fatalf("entry %d read from the store: %v, want %v", i, got, want)
		}
	}

	// Large entries: the byte bound holds; an entry over it is not kept.
	if err := c.StoreLogs(entries(21, 25, 1500)); err != nil {
		t.Fatal(err)
	}
	if n, b := c.Cached(); n != 2 || b != 3000 {
		t.Fatalf("cached %d entries, %d bytes; want 2, 3000", n, b)
	}
	if !get(t, c, s, 23) || get(t, c, s, 24) || get(t, c, s, 25) {
		t.Fatal("want 23 from the store, 24 and 25 from the cache")
	}
	if err := c.StoreLog(entries(26, 26, 5000)[0]); err != nil {
		t.Fatal(err)
	}
	if n, b := c.Cached(); n != 0 || b != 0 {
		t.Fatalf("after an entry over the byte bound: cached %d entries, %d bytes", n, b)
	}
	if !get(t, c, s, 26) {
		t.Fatal("26, over the bound, came from the cache")
	}
}

// TestCacheTruncation: a deposed leader's suffix is deleted and rewritten
// with other entries at the same indexes; the cache never returns the old
// ones. Head compaction empties it too.
func TestCacheTruncation(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	c := NewCache(s, 16, 1<<20)
	if err := c.StoreLogs(entries(1, 10, 10)); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRange(6, 10); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Cached(); n != 0 {
		t.Fatalf("cached %d entries after DeleteRange", n)
	}
	rewrite := entries(6, 8, 10)
	for _, l := range rewrite {
		l.Term, l.Data[1] = 2, 'x'
	}
	if err := c.StoreLogs(rewrite); err != nil {
		t.Fatal(err)
	}
	for i := uint64(6); i <= 8; i++ {
		var l raft.Log
		if err := c.GetLog(i, &l); err != nil || l.Term != 2 || l.Data[1] != 'x' {
			t.Fatalf("entry %d after the rewrite: term %d, %v", i, l.Term, err)
		}
	}
	var l raft.Log
	if err := c.GetLog(9, &l); err != raft.ErrLogNotFound {
		t.Fatalf("deleted entry 9: %v", err)
	}
	if !get(t, c, s, 5) || get(t, c, s, 7) {
		t.Fatal("want 5 from the store and 7 from the cache")
	}

	// A store after a gap (a snapshot install wiped the log) starts anew.
	if err := c.StoreLogs(entries(100, 101, 10)); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Cached(); n != 2 {
		t.Fatalf("cached %d entries after a gap, want 2", n)
	}
	if get(t, c, s, 100) || !get(t, c, s, 8) {
		t.Fatal("want 100 from the cache and 8 from the store")
	}
}
