package sdk

import (
	"encoding/binary"
	"fmt"

	"github.com/raftkv/raftkv/abi"
)

// Typed state, in the spirit of CosmWasm's cw-storage-plus: an Item is one
// value under a fixed key, a Map is a set of values under a key prefix with
// typed, ordered keys, and a Sequence is a counter. Values are encoded with
// the SDK's codec (Marshal, MsgPack), keys with a KeyCodec whose byte order
// is the order of the keys, so that iterating a Map visits its keys in
// order.
//
// Layout: an Item is stored at its key; a Map entry at prefix+encoded key.
// They share the plugin's one namespace, so give each Map a prefix that no
// other key starts with (a separator helps: "job/", "acct/") and Items keys
// outside every prefix. The keys are visible as they are through the kv-style
// listings of a backup (raftkv backup inspect).

// Item is a typed value stored under one key.
type Item[T any] struct{ key []byte }

// NewItem returns the Item stored at key.
func NewItem[T any](key string) Item[T] { return Item[T]{key: []byte(key)} }

// Key returns the item's key.
func (i Item[T]) Key() []byte { return i.key }

// MayLoad returns the value, or ok false if it was never saved (or was
// removed). A stored value that does not decode as T is an error.
func (i Item[T]) MayLoad(st State) (v T, ok bool, err error) { return load[T](st, i.key) }

// Load returns the value, or an *abi.Error with CodeNotFound if there is none.
func (i Item[T]) Load(st State) (T, error) {
	v, ok, err := load[T](st, i.key)
	if err == nil && !ok {
		err = NotFound("%s not found", i.key)
	}
	return v, err
}

// LoadOr returns the value, or def if there is none.
func (i Item[T]) LoadOr(st State, def T) (T, error) {
	v, ok, err := load[T](st, i.key)
	if err != nil || !ok {
		return def, err
	}
	return v, nil
}

// Save stores v.
func (i Item[T]) Save(st State, v T) error { return save(st, i.key, v) }

// Remove deletes the value; it is not an error if there is none.
func (i Item[T]) Remove(st State) error {
	_, err := st.Delete(i.key)
	return err
}

// Update loads the value (ok false and the zero T if there is none), passes
// it to fn and saves what fn returns; an error from fn saves nothing.
func (i Item[T]) Update(st State, fn func(v T, ok bool) (T, error)) (T, error) {
	return update(st, i.key, fn)
}

func load[T any](st State, key []byte) (v T, ok bool, err error) {
	b, _, ok := st.Get(key)
	if !ok {
		return v, false, nil
	}
	if err := Unmarshal(b, &v); err != nil {
		return v, false, Errorf(abi.CodeInternal, "stored value at %s does not decode as %T: %v", quote(key), v, err)
	}
	return v, true, nil
}

func save[T any](st State, key []byte, v T) error {
	b, err := Marshal(v)
	if err != nil {
		return Errorf(abi.CodeInternal, "encoding %T: %v", v, err)
	}
	return st.Set(key, b)
}

func update[T any](st State, key []byte, fn func(T, bool) (T, error)) (T, error) {
	v, ok, err := load[T](st, key)
	if err != nil {
		return v, err
	}
	if v, err = fn(v, ok); err != nil {
		return v, err
	}
	return v, save(st, key, v)
}

// Sequence is a counter stored under one key, for numbering objects (job ids,
// transaction numbers). Its first Next is 1.
type Sequence struct{ item Item[uint64] }

// NewSequence returns the Sequence stored at key.
func NewSequence(key string) Sequence { return Sequence{NewItem[uint64](key)} }

// Current returns the last number Next returned (0 before the first).
func (s Sequence) Current(st State) (uint64, error) { return s.item.LoadOr(st, 0) }

// Next increments the counter and returns its new value.
func (s Sequence) Next(st State) (uint64, error) {
	return s.item.Update(st, func(n uint64, _ bool) (uint64, error) {
		if n == ^uint64(0) {
			return n, Errorf(abi.CodeInternal, "sequence %s exhausted", s.item.key)
		}
		return n + 1, nil
	})
}

// KeyCodec encodes the keys of a Map so that the byte order of encoded keys
// is the order of the keys (the host's store orders keys as unsigned bytes).
type KeyCodec[K any] interface {
	// AppendKey appends the encoding of k to dst.
	AppendKey(dst []byte, k K) []byte
	// DecodeKey decodes a whole encoded key.
	DecodeKey(b []byte) (K, error)
}

// Key codecs for the common key types.
var (
	// StringKey encodes a string as its bytes (byte order: lexicographic).
	StringKey KeyCodec[string] = stringKey{}
	// BytesKey encodes a []byte as itself.
	BytesKey KeyCodec[[]byte] = bytesKey{}
	// Uint64Key encodes a uint64 as 8 big-endian bytes (numeric order).
	Uint64Key KeyCodec[uint64] = uint64Key{}
	// Int64Key encodes an int64 as 8 big-endian bytes with the sign bit
	// flipped (numeric order, negatives first).
	Int64Key KeyCodec[int64] = int64Key{}
)

type stringKey struct{}

func (stringKey) AppendKey(dst []byte, k string) []byte { return append(dst, k...) }
func (stringKey) DecodeKey(b []byte) (string, error)    { return string(b), nil }

type bytesKey struct{}

func (bytesKey) AppendKey(dst []byte, k []byte) []byte { return append(dst, k...) }
func (bytesKey) DecodeKey(b []byte) ([]byte, error)    { return append([]byte(nil), b...), nil }

type uint64Key struct{}

func (uint64Key) AppendKey(dst []byte, k uint64) []byte { return binary.BigEndian.AppendUint64(dst, k) }
func (uint64Key) DecodeKey(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("uint64 key of %d bytes, want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

type int64Key struct{}

func (int64Key) AppendKey(dst []byte, k int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(k)^(1<<63))
}
func (int64Key) DecodeKey(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("int64 key of %d bytes, want 8", len(b))
	}
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), nil
}

// Pair is a two-part key, for a Map indexed by (A, B): ordered by A, then B,
// and iterable over one A with Map.Prefix.
type Pair[A, B any] struct {
	A A
	B B
}

// PairKey returns the codec of Pair keys: a's encoding preceded by its length
// (2 bytes, big-endian), then b's. With a variable-length A (a string), pairs
// are therefore ordered by the length of A's encoding first, then by its
// bytes, as in cw-storage-plus; with a fixed-length A the order is A's.
func PairKey[A, B any](a KeyCodec[A], b KeyCodec[B]) KeyCodec[Pair[A, B]] {
	return pairKey[A, B]{a, b}
}

type pairKey[A, B any] struct {
	a KeyCodec[A]
	b KeyCodec[B]
}

func (c pairKey[A, B]) AppendKey(dst []byte, k Pair[A, B]) []byte {
	return c.b.AppendKey(c.appendPrefix(dst, k.A), k.B)
}

// appendPrefix appends the encoding of a Pair's first part.
func (c pairKey[A, B]) appendPrefix(dst []byte, a A) []byte {
	at := len(dst)
	dst = append(dst, 0, 0)
	dst = c.a.AppendKey(dst, a)
	binary.BigEndian.PutUint16(dst[at:], uint16(len(dst)-at-2))
	return dst
}

func (c pairKey[A, B]) DecodeKey(b []byte) (Pair[A, B], error) {
	var p Pair[A, B]
	if len(b) < 2 || int(binary.BigEndian.Uint16(b)) > len(b)-2 {
		return p, fmt.Errorf("pair key of %d bytes: bad length prefix", len(b))
	}
	n := 2 + int(binary.BigEndian.Uint16(b))
	var err error
	if p.A, err = c.a.DecodeKey(b[2:n]); err != nil {
		return p, err
	}
	p.B, err = c.b.DecodeKey(b[n:])
	return p, err
}

// Map is a set of typed values under a key prefix, with keys of type K
// encoded by a KeyCodec.
type Map[K, V any] struct {
	prefix []byte
	keys   KeyCodec[K]
}

// NewMap returns the Map stored under prefix, with keys encoded by keys.
func NewMap[K, V any](prefix string, keys KeyCodec[K]) Map[K, V] {
	return Map[K, V]{prefix: []byte(prefix), keys: keys}
}

// Key returns the state key of k.
func (m Map[K, V]) Key(k K) []byte {
	return m.keys.AppendKey(append(make([]byte, 0, len(m.prefix)+16), m.prefix...), k)
}

// Has reports whether k has a value.
func (m Map[K, V]) Has(st State, k K) bool {
	_, _, ok := st.Get(m.Key(k))
	return ok
}

// MayLoad returns k's value, or ok false if it has none.
func (m Map[K, V]) MayLoad(st State, k K) (V, bool, error) { return load[V](st, m.Key(k)) }

// Load returns k's value, or an *abi.Error with CodeNotFound if it has none.
func (m Map[K, V]) Load(st State, k K) (V, error) {
	key := m.Key(k)
	v, ok, err := load[V](st, key)
	if err == nil && !ok {
		err = NotFound("%v not found in %s", k, m.prefix)
	}
	return v, err
}

// Save stores v as k's value.
func (m Map[K, V]) Save(st State, k K, v V) error { return save(st, m.Key(k), v) }

// Remove deletes k's value and reports whether it had one.
func (m Map[K, V]) Remove(st State, k K) (bool, error) { return st.Delete(m.Key(k)) }

// Update loads k's value (ok false and the zero V if it has none), passes it
// to fn and saves what fn returns; an error from fn saves nothing.
func (m Map[K, V]) Update(st State, k K, fn func(v V, ok bool) (V, error)) (V, error) {
	return update(st, m.Key(k), fn)
}
