package logstore

import (
	"sync"

	"github.com/hashicorp/raft"
)

// Cache keeps the last entries written to a Raft log store in memory, so
// that the leader replicates what it just appended without reading it back.
// It is raft.LogCache bounded by bytes as well as by entries: raft.LogCache
// keeps its last N entries whatever their size, and a log of large
// entries (transactions of a thousand writes, plugin deploys) made it hold
// about 130 MB of a node's heap (BENCHMARKS.md, "Ten million keys").
//
// The cached entries are the window [lo, hi) of consecutive indexes; an
// entry is evicted, oldest first, once the window holds more than the
// entry or byte bound. A store that is not contiguous with the window (the
// first write, a write after DeleteRange) starts a new window.
type Cache struct {
	raft.LogStore

	mu       sync.RWMutex
	ring     []*raft.Log // entry i at ring[i%len(ring)], for lo <= i < hi
	lo, hi   uint64
	bytes    int64
	maxBytes int64
}

// NewCache wraps store with a cache of at most entries entries and
// maxBytes bytes of entry data.
func NewCache(store raft.LogStore, entries int, maxBytes int64) *Cache {
	return &Cache{LogStore: store, ring: make([]*raft.Log, max(entries, 1)), maxBytes: maxBytes}
}

func logBytes(l *raft.Log) int64 { return int64(len(l.Data) + len(l.Extensions)) }

// IsMonotonic reports whether the store below is (raft.MonotonicLogStore).
func (c *Cache) IsMonotonic() bool {
	m, ok := c.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// GetLog returns the entry from the cache, or from the store.
func (c *Cache) GetLog(index uint64, log *raft.Log) error {
	c.mu.RLock()
	if index >= c.lo && index < c.hi {
		*log = *c.ring[index%uint64(len(c.ring))]
		c.mu.RUnlock()
		return nil
	}
	c.mu.RUnlock()
	return c.LogStore.GetLog(index, log)
}

// StoreLog stores one entry.
func (c *Cache) StoreLog(log *raft.Log) error { return c.StoreLogs([]*raft.Log{log}) }

// StoreLogs stores the entries, then caches them.
func (c *Cache) StoreLogs(logs []*raft.Log) error {
	if err := c.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		if l.Index != c.hi {
			c.reset(l.Index)
		}
		if c.hi-c.lo == uint64(len(c.ring)) {
			c.evictOldest() // its slot is l's
		}
		c.ring[l.Index%uint64(len(c.ring))] = l
		c.hi++
		c.bytes += logBytes(l)
		for c.lo < c.hi && c.bytes > c.maxBytes {
			c.evictOldest()
		}
	}
	return nil
}

// DeleteRange empties the cache and deletes from the store.
func (c *Cache) DeleteRange(min, max uint64) error {
	c.mu.Lock()
	c.reset(0)
	c.mu.Unlock()
	return c.LogStore.DeleteRange(min, max)
}

// reset empties the window and starts the next one at index. c.mu held.
func (c *Cache) reset(index uint64) {
	clear(c.ring)
	c.lo, c.hi, c.bytes = index, index, 0
}

// evictOldest drops the entry at lo. c.mu held.
func (c *Cache) evictOldest() {
	i := c.lo % uint64(len(c.ring))
	c.bytes -= logBytes(c.ring[i])
	c.ring[i] = nil
	c.lo++
}

// Cached returns the number of entries and bytes cached.
func (c *Cache) Cached() (entries int, bytes int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return int(c.hi - c.lo), c.bytes
}
