package sdk

import (
	"bytes"
	"iter"

	"github.com/raftkv/raftkv/abi"
)

// Iteration over the state. State.Scan answers one page whose slices the next
// State call overwrites; the iterators below page through a range for the
// caller, copy each page before yielding from it, and continue after the last
// key seen, so the loop body may read and write the state freely (a write to
// a key not visited yet is seen when the iterator reaches it; a deleted one
// is not). A page is ScanPage records, or fewer when they would exceed
// MaxScanBytes.
//
// A failed scan, or a value that does not decode, ends the loop and is
// stored in *errp, which the caller checks after the loop:
//
//	var err error
//	for id, job := range jobs.All(st, &err) {
//		…
//	}
//	if err != nil {
//		return nil, err
//	}
//
// If errp is nil a failure panics (the entry traps and its writes are undone).
//
// Every record read costs the plugin fuel (the host charges per byte moved)
// and every value decoded more: Map.First and PopFirst ask for one record,
// Map.Count decodes none, and a loop that breaks early reads at most the
// page it is in.

// ScanPage is the number of records the iterators ask the host for at a time.
const ScanPage = 256

// Scan returns the keys and values with start <= key < end in key order (a
// nil or empty end: no upper bound), as copies the caller may keep.
func Scan(st State, start, end []byte, errp *error) iter.Seq2[[]byte, []byte] {
	return func(yield func(k, v []byte) bool) {
		if err := scanPages(st, start, end, yield); err != nil {
			fail(errp, err)
		}
	}
}

// ScanPrefix returns the keys and values whose key starts with prefix, in key
// order, as copies the caller may keep.
func ScanPrefix(st State, prefix []byte, errp *error) iter.Seq2[[]byte, []byte] {
	return Scan(st, prefix, PrefixEnd(prefix), errp)
}

func fail(errp *error, err error) {
	if errp == nil {
		panic("sdk: iteration failed: " + err.Error())
	}
	*errp = err
}

// scanPage asks for the records of [start, end) from start, *limit of them,
// or fewer when they would exceed MaxScanBytes (*limit then stays lower for
// the next pages).
func scanPage(st State, start, end []byte, limit *int) ([]abi.Record, error) {
	for {
		recs, err := st.Scan(start, end, *limit)
		if ae, ok := err.(*abi.Error); ok && ae.Code == abi.CodeTooLarge && *limit > 1 {
			*limit = max(1, *limit/4)
			continue
		}
		return recs, err
	}
}

// scanPages yields every record of [start, end) to yield, a copied page at a
// time, until yield returns false. It returns a scan's error.
func scanPages(st State, start, end []byte, yield func(k, v []byte) bool) error {
	limit := ScanPage
	cur := start
	for {
		recs, err := scanPage(st, cur, end, &limit)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		// One allocation holds the page's keys and values, and the key to
		// continue from: the last key followed by a zero byte, the smallest
		// key after it.
		size := 1
		for _, r := range recs {
			size += 2*len(r.Key) + len(r.Value)
		}
		buf := make([]byte, 0, size)
		type kv struct{ k, v []byte }
		page := make([]kv, len(recs))
		for i, r := range recs {
			at := len(buf)
			buf = append(buf, r.Key...)
			k := buf[at:len(buf):len(buf)]
			at = len(buf)
			buf = append(buf, r.Value...)
			page[i] = kv{k, buf[at:len(buf):len(buf)]}
		}
		at := len(buf)
		buf = append(buf, recs[len(recs)-1].Key...)
		buf = append(buf, 0)
		next := buf[at:]
		full := len(recs) == limit
		for _, r := range page {
			if !yield(r.k, r.v) {
				return nil
			}
		}
		if !full {
			return nil
		}
		cur = next
	}
}

// All returns every entry of m in key order.
func (m Map[K, V]) All(st State, errp *error) iter.Seq2[K, V] {
	return m.iterate(st, m.prefix, PrefixEnd(m.prefix), errp)
}

// From returns the entries of m with keys >= start, in key order.
func (m Map[K, V]) From(st State, start K, errp *error) iter.Seq2[K, V] {
	return m.iterate(st, m.Key(start), PrefixEnd(m.prefix), errp)
}

// After returns the entries of m with keys > k, in key order: the next page
// of a listing that ended at k.
func (m Map[K, V]) After(st State, k K, errp *error) iter.Seq2[K, V] {
	return m.iterate(st, append(m.Key(k), 0), PrefixEnd(m.prefix), errp)
}

// Range returns the entries of m with start <= key < end, in key order.
func (m Map[K, V]) Range(st State, start, end K, errp *error) iter.Seq2[K, V] {
	return m.iterate(st, m.Key(start), m.Key(end), errp)
}

func (m Map[K, V]) iterate(st State, start, end []byte, errp *error) iter.Seq2[K, V] {
	return decodeEach[K, V](st, start, end, len(m.prefix), m.keys, errp)
}

// decodeEach iterates [start, end), decoding each key after its first skip
// bytes with keys and each value as a V.
func decodeEach[K, V any](st State, start, end []byte, skip int, keys KeyCodec[K], errp *error) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		var derr error
		err := scanPages(st, start, end, func(kb, vb []byte) bool {
			var k K
			var v V
			if k, v, derr = decodeRecord[K, V](kb, vb, skip, keys); derr != nil {
				return false
			}
			return yield(k, v)
		})
		if err == nil {
			err = derr
		}
		if err != nil {
			fail(errp, err)
		}
	}
}

// decodeRecord decodes a record of a Map: its key after the first skip
// bytes with keys, its value as a V.
func decodeRecord[K, V any](kb, vb []byte, skip int, keys KeyCodec[K]) (k K, v V, err error) {
	if k, err = keys.DecodeKey(kb[skip:]); err != nil {
		return k, v, Errorf(abi.CodeInternal, "stored key %s does not decode: %v", quote(kb), err)
	}
	if err := Unmarshal(vb, &v); err != nil {
		return k, v, Errorf(abi.CodeInternal, "stored value at %s does not decode as %T: %v", quote(kb), v, err)
	}
	return k, v, nil
}

// Prefix returns the entries of a Map keyed by Pair[A, B] whose first part
// is a, as B → V in B's order. m must use a PairKey codec.
func Prefix[A, B, V any](m Map[Pair[A, B], V], st State, a A, errp *error) iter.Seq2[B, V] {
	pk, ok := m.keys.(pairKey[A, B])
	if !ok {
		panic("sdk: Prefix needs a Map whose keys use PairKey")
	}
	p := pk.appendPrefix(append([]byte(nil), m.prefix...), a)
	return decodeEach[B, V](st, p, PrefixEnd(p), len(p), pk.b, errp)
}

// First returns the entry of m with the smallest key; ok is false if m is
// empty. It asks the host for that one record only.
func (m Map[K, V]) First(st State) (k K, v V, ok bool, err error) {
	_, k, v, ok, err = m.first(st)
	return k, v, ok, err
}

// PopFirst removes the entry of m with the smallest key and returns it; ok
// is false if m is empty: a queue's pop, or a scheduler's next task with
// keys that sort by time.
func (m Map[K, V]) PopFirst(st State) (k K, v V, ok bool, err error) {
	key, k, v, ok, err := m.first(st)
	if err == nil && ok {
		_, err = st.Delete(key)
	}
	return k, v, ok && err == nil, err
}

// first returns the first entry of m and its state key.
func (m Map[K, V]) first(st State) (key []byte, k K, v V, ok bool, err error) {
	recs, err := st.Scan(m.prefix, PrefixEnd(m.prefix), 1)
	if err != nil || len(recs) == 0 {
		return nil, k, v, false, err
	}
	// A copy: what decodes from it outlives the next State call.
	buf := append(append(make([]byte, 0, len(recs[0].Key)+len(recs[0].Value)), recs[0].Key...), recs[0].Value...)
	key = buf[:len(recs[0].Key):len(recs[0].Key)]
	k, v, err = decodeRecord[K, V](key, buf[len(key):], len(m.prefix), m.keys)
	return key, k, v, err == nil, err
}

// Count returns the number of entries of m. The host keeps no count: it
// scans them all, as the iterators do, but without decoding their values.
func (m Map[K, V]) Count(st State) (int, error) {
	n, limit, cur, end := 0, ScanPage, m.prefix, PrefixEnd(m.prefix)
	for {
		recs, err := scanPage(st, cur, end, &limit)
		if err != nil {
			return 0, err
		}
		if n += len(recs); len(recs) < limit {
			return n, nil
		}
		// Continue after the last key (a copy: the next Scan overwrites it).
		cur = append(append([]byte(nil), recs[len(recs)-1].Key...), 0)
	}
}

// MoveTo moves every entry of m to dst, a Map of the same types under
// another prefix, and leaves m empty: the migration of a Map to a new
// place. Each value must decode as a V (else MoveTo fails, as the
// iterators do, and the migration with it); it is written as it is stored.
// The prefixes must not overlap (neither may start with the other).
func (m Map[K, V]) MoveTo(st State, dst Map[K, V]) error {
	if bytes.HasPrefix(m.prefix, dst.prefix) || bytes.HasPrefix(dst.prefix, m.prefix) {
		return Errorf(abi.CodeInternal, "MoveTo from %s to %s: the prefixes overlap", quote(m.prefix), quote(dst.prefix))
	}
	var err error
	for k, v := range Scan(st, m.prefix, PrefixEnd(m.prefix), &err) {
		if _, _, err := decodeRecord[K, V](k, v, len(m.prefix), m.keys); err != nil {
			return err
		}
		if err := st.Set(append(append([]byte(nil), dst.prefix...), k[len(m.prefix):]...), v); err != nil {
			return err
		}
		if _, err := st.Delete(k); err != nil {
			return err
		}
	}
	return err
}

// Page sizes of a PageRequest.
const (
	DefaultPageLimit = 100  // a PageRequest's Limit when it gives none
	MaxPageLimit     = 1000 // the largest Limit a PageRequest may ask for
)

// PageRequest asks for one page of a Map's listing (Map.List): the entries
// after the key After (from the first if After is absent), at most Limit of
// them. As a query, {"after":k,"limit":n}, both optional.
type PageRequest[K any] struct {
	After *K  `msgpack:"after,omitempty"`
	Limit int `msgpack:"limit,omitempty"`
}

// Check sets Limit to DefaultPageLimit if it is 0 and refuses one outside
// 1..MaxPageLimit: a Router runs it before the handler.
func (r *PageRequest[K]) Check() error {
	if r.Limit == 0 {
		r.Limit = DefaultPageLimit
	}
	return Ensure(r.Limit >= 1 && r.Limit <= MaxPageLimit, "limit must be 1 to %d, not %d", MaxPageLimit, r.Limit)
}

// Page is one page of a Map's listing: its values in key order, and the key
// to ask for the next page after, absent on the last page. As a result,
// {"items":[v,…],"next":k}. It holds values only: a Map whose values do not
// hold their keys lists its pairs with After and Collect.
type Page[K, V any] struct {
	Items []V `msgpack:"items"`
	Next  *K  `msgpack:"next,omitempty"`
}

// List answers a PageRequest with one Page of m. Its signature is a query
// handler's, so a listing query is one line:
//
//	sdk.Query(r, "list", jobs.List)
//
// It runs Check itself, for a caller that is not a Router.
func (m Map[K, V]) List(st State, req PageRequest[K]) (Page[K, V], error) {
	if err := req.Check(); err != nil {
		return Page[K, V]{}, err
	}
	var err error
	seq := m.All(st, &err)
	if req.After != nil {
		seq = m.After(st, *req.After, &err)
	}
	keys, items, more := Collect(seq, req.Limit)
	p := Page[K, V]{Items: items}
	if more {
		p.Next = &keys[len(keys)-1]
	}
	return p, err
}

// Collect returns the first n pairs of seq (all of them if n <= 0), as
// slices that are never nil, and whether seq had more after them: one page
// of a listing,
//
//	_, jobs, more := sdk.Collect(queue.After(st, req.After, &err), req.Limit)
//
// To tell whether there are more, it reads one pair past the n-th.
func Collect[K, V any](seq iter.Seq2[K, V], n int) (keys []K, values []V, more bool) {
	keys, values = []K{}, []V{}
	for k, v := range seq {
		if n > 0 && len(keys) == n {
			more = true
			break
		}
		keys, values = append(keys, k), append(values, v)
	}
	return keys, values, more
}
