package state

import (
	"encoding/binary"
	"runtime"
	"unsafe"

	"github.com/google/btree"
)

// degree is the B-tree degree: nodes hold degree-1 .. 2*degree-1 items.
// Measured on 1M random 16-byte keys with 32-byte items (degrees 16 to 128):
// 64 was up to ~10% faster than 32 for Get and Set without views, 16
// cheapest when a View follows every batch (smaller nodes to copy); 32 was
// the compromise, copying ~2 KB per leaf after a View. With 16-byte items,
// 64 copies the same ~2 KB, and against 32 it gave Get 507–590 ns against
// 633, restored heap 144.9 B/key against 147.9, and Set after a View
// 2.0 µs against 1.8 (BenchmarkGet, BenchmarkRestore, BenchmarkSet).
const degree = 64

// item is one key/value/version triple, stored by value in the tree nodes:
// 16 bytes, half of them the key's length and first bytes, so that most
// comparisons of a tree descent need nothing else.
//
// Everything else lives in one allocation at p: the key, then the value's
// length (u32) and the version (u64), both little endian, then the value.
// For 16-byte keys and 100-byte values that is 128 bytes, one of Go's size
// classes, so a key costs 128 + 16 bytes (the item, in a full node) where a
// 32-byte item with key and value alone in a 128-byte allocation cost 160
// (BenchmarkRestore's heapB/key, BENCHMARKS.md). The key comes first so that a
// search key (probe) can alias the caller's bytes: the tree compares keys
// only, and a key needs only p and the length in the item.
//
// Items are immutable once built, so the undo log, views and callers may keep
// them (and the slices derived from them) for as long as they like: a write
// replaces the item, it never modifies the bytes.
type item struct {
	p  *byte  // key, value length, version, value; nil for a probe of an empty key
	pk uint64 // the key's first 6 bytes (big endian, zero padded), then its length (u16)
}

// prefixBytes is how many leading key bytes pk holds. A 16-bit length is
// enough: keys are at most abi.MaxKeySize (4 KiB) long.
const prefixBytes = 6

// recordTail is the value length and version between key and value.
const recordTail = 4 + 8

// packKey returns pk for key: its first prefixBytes bytes, big endian and zero
// padded, in the high 48 bits, and its length in the low 16. Comparing the
// high bits is monotonic in key order: a < b implies pk(a)>>16 <= pk(b)>>16.
func packKey(key []byte) uint64 {
	var b [8]byte
	copy(b[:prefixBytes], key)
	return binary.BigEndian.Uint64(b[:]) | uint64(len(key))
}

// newItem copies key, value and version into one fresh allocation. Callers
// have checked the lengths against abi.MaxKeySize and abi.MaxValueSize.
func newItem(key, value []byte, version uint64) item {
	buf := make([]byte, len(key)+recordTail+len(value))
	copy(buf, key)
	binary.LittleEndian.PutUint32(buf[len(key):], uint32(len(value)))
	binary.LittleEndian.PutUint64(buf[len(key)+4:], version)
	copy(buf[len(key)+recordTail:], value)
	return item{p: unsafe.SliceData(buf), pk: packKey(key)}
}

// probe returns an item usable only as a search key: it aliases key without
// copying. It must never be stored in a tree.
//
// A key too long for pk's 16-bit length (a scan bound may be) is cut to
// maxProbeLen bytes: no stored key is longer than abi.MaxKeySize, so the cut
// key orders against every stored key as the whole key does.
func probe(key []byte) item {
	key = key[:min(len(key), maxProbeLen)]
	return item{p: unsafe.SliceData(key), pk: packKey(key)}
}

// maxProbeLen is the longest key pk can describe.
const maxProbeLen = 1<<16 - 1

// klen returns the key's length.
func (it item) klen() int { return int(uint16(it.pk)) }

// tail returns the value length and version bytes (stored items only).
func (it item) tail() []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(it.p), it.klen())), recordTail)
}

// vlen returns the value's length (stored items only).
func (it item) vlen() int { return int(binary.LittleEndian.Uint32(it.tail())) }

// version returns the Raft log index of the item's write (stored items only).
func (it item) version() uint64 { return binary.LittleEndian.Uint64(it.tail()[4:]) }

// key returns the key as a string aliasing the item's bytes (no copy).
func (it item) key() string { return unsafe.String(it.p, it.klen()) }

// keyBytes returns the key as a slice aliasing the item's bytes (no copy).
// Callers must not modify it.
func (it item) keyBytes() []byte {
	k := unsafe.Slice(it.p, it.klen())
	return k[:len(k):len(k)]
}

// value returns the value as a slice aliasing the item's bytes (no copy).
// Callers must not modify it. Capacity is clipped so that an append by the
// caller reallocates instead of scribbling past the value.
func (it item) value() []byte {
	off := it.klen() + recordTail
	all := unsafe.Slice(it.p, off+it.vlen())
	return all[off:len(all):len(all)]
}

// size is the number of key and value bytes the item holds.
func (it item) size() int { return it.klen() + it.vlen() }

// lessItem orders items by key, comparing bytes as unsigned (Go string order).
// Different prefixes decide alone; equal prefixes of keys no longer than
// prefixBytes mean one key is the other plus zero bytes, so the shorter is
// smaller (and pk orders by length last).
func lessItem(a, b item) bool {
	if a.pk>>16 != b.pk>>16 || (a.klen() <= prefixBytes && b.klen() <= prefixBytes) {
		return a.pk < b.pk
	}
	return a.key() < b.key()
}

func newTree() *btree.BTreeG[item] { return btree.NewG[item](degree, lessItem) }

// ascendBatched visits every item in order like Ascend, but hands them to fn
// in groups of prefetchBatch after touching each group's bytes with
// independent loads. A full pass reads every item's out-of-line bytes, each a
// likely cache miss; issued back to back, the misses overlap instead of
// stalling one after the other (this is what bounds WriteTo and Digest).
func ascendBatched(t *btree.BTreeG[item], fn func(item) bool) {
	var batch [prefetchBatch]item
	n := 0
	stopped := false
	var touched byte
	flush := func() bool {
		for _, it := range batch[:n] {
			if it.p != nil {
				touched |= *it.p
			}
		}
		for _, it := range batch[:n] {
			if !fn(it) {
				return false
			}
		}
		n = 0
		return true
	}
	t.Ascend(func(it item) bool {
		batch[n] = it
		n++
		if n == len(batch) && !flush() {
			stopped = true
			return false
		}
		return true
	})
	if !stopped {
		flush()
	}
	runtime.KeepAlive(touched) // the touching loads must not be optimised away
}

// prefetchBatch is how many items ascendBatched touches ahead.
const prefetchBatch = 32
