package plugin

import (
	"container/list"
	"sync"

	"github.com/raftkv/raftkv/host/plugin/meter"
)

// instrumented memoizes meter.Instrument for the process: a deploy loads the
// same module several times (the leader validates it before proposing it,
// then applies it; a restart loads every plugin again; nodes of an
// in-process cluster share it), and instrumenting a Go module costs about
// 0.1 s, seconds under the race detector. Instrument is a pure function of
// its input, so a cached result is what a new call would return. The cache
// keeps the most recently used results up to 64 MiB.
var instrumented = newInstrumentCache(64 << 20)

func newInstrumentCache(max int) *instrumentCache {
	return &instrumentCache{entries: map[instrumentKey]*list.Element{}, order: list.New(), max: max}
}

type instrumentKey struct {
	hash string // of the input
	opts meter.Options
}

type instrumentEntry struct {
	key instrumentKey
	out []byte
	err error
}

type instrumentCache struct {
	mu      sync.Mutex
	entries map[instrumentKey]*list.Element
	order   *list.List // front: most recently used
	size    int
	max     int
}

// instrument returns meter.Instrument(wasm, opts); hash is wasm's HashOf.
// The result must not be modified.
func (c *instrumentCache) instrument(hash string, wasm []byte, opts meter.Options) ([]byte, error) {
	key := instrumentKey{hash, opts}
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		c.order.MoveToFront(e)
		ent := e.Value.(*instrumentEntry)
		c.mu.Unlock()
		return ent.out, ent.err
	}
	c.mu.Unlock()
	out, err := meter.Instrument(wasm, opts)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(out) <= c.max {
		c.entries[key] = c.order.PushFront(&instrumentEntry{key, out, err})
		c.size += len(out)
		for c.size > c.max {
			last := c.order.Back()
			ent := c.order.Remove(last).(*instrumentEntry)
			delete(c.entries, ent.key)
			c.size -= len(ent.out)
		}
	}
	return out, err
}
