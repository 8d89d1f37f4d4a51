package state

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"

	"github.com/google/btree"
)

// View is an immutable, consistent picture of every namespace, as returned by
// Store.View. Any number of goroutines may use it concurrently, for as long
// as they like; later writes to the store never show in it.
type View struct {
	names  []string // sorted
	spaces map[string]*NamespaceView
}

// Namespace returns the view of the namespace called name, if it existed.
func (v *View) Namespace(name string) (*NamespaceView, bool) {
	nv, ok := v.spaces[name]
	return nv, ok
}

// Names returns the namespace names in ascending order. The caller may modify
// the returned slice.
func (v *View) Names() []string { return append([]string(nil), v.names...) }

// Digest returns a SHA-256 over every namespace in name order: for each, the
// name (length-prefixed) and the namespace's Digest. Equal contents give equal
// digests on every node, whatever order the writes happened in.
func (v *View) Digest() [32]byte {
	h := sha256.New()
	var buf [4]byte
	for _, name := range v.names {
		binary.LittleEndian.PutUint32(buf[:], uint32(len(name)))
		h.Write(buf[:])
		h.Write([]byte(name))
		d := v.spaces[name].Digest()
		h.Write(d[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// NamespaceView is a read-only view of one namespace, shared by every reader of
// a View.
type NamespaceView struct {
	name string
	tree *btree.BTreeG[item] // a clone nobody writes to
	size int64               // the namespace's Bytes when the view was taken

	digestOnce sync.Once
	digest     [32]byte
}

// Name returns the namespace's name.
func (nv *NamespaceView) Name() string { return nv.name }

// Get returns the value and version stored under key. The caller must not
// modify the value; it may keep it.
func (nv *NamespaceView) Get(key []byte) (value []byte, version uint64, ok bool) {
	it, ok := nv.tree.Get(probe(key))
	if !ok {
		return nil, 0, false
	}
	return it.value(), it.version(), true
}

// Scan visits the keys k with start <= k < end in ascending byte order (end
// nil or empty: no upper bound), at most limit of them (limit <= 0: no limit),
// and stops early when fn returns false. fn must not modify key or value; it
// may keep them.
func (nv *NamespaceView) Scan(start, end []byte, limit int, fn func(key, value []byte, version uint64) bool) {
	scan(nv.tree, start, end, limit, fn)
}

// Len returns the number of keys.
func (nv *NamespaceView) Len() int { return nv.tree.Len() }

// Bytes returns the sum of the lengths of the keys and values.
func (nv *NamespaceView) Bytes() int64 { return nv.size }

// Digest returns a SHA-256 over every (key, value, version) in key order, each
// framed as u32 key length, key, u32 value length, value, u64 version (little
// endian), so that no two different contents hash the same byte stream.
// It is computed once per NamespaceView, which views share while the
// namespace is not written.
func (nv *NamespaceView) Digest() [32]byte {
	nv.digestOnce.Do(func() { nv.digest = nv.computeDigest() })
	return nv.digest
}

func (nv *NamespaceView) computeDigest() [32]byte {
	h := sha256.New()
	buf := make([]byte, 0, 64<<10)
	ascendBatched(nv.tree, func(it item) bool {
		if len(buf)+it.size()+16 > cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(it.klen()))
		buf = append(buf, it.key()...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(it.vlen()))
		buf = append(buf, it.value()...)
		buf = binary.LittleEndian.AppendUint64(buf, it.version())
		return true
	})
	h.Write(buf)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
