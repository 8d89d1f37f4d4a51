package sdk

import (
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

// scanPages yields every record of [start, end) to yield, a copied page at a
// time, until yield returns false. It returns a scan's error.
func scanPages(st State, start, end []byte, yield func(k, v []byte) bool) error {
	limit := ScanPage
	cur := start
	for {
		recs, err := st.Scan(cur, end, limit)
		if err != nil {
			if ae, ok := err.(*abi.Error); ok && ae.Code == abi.CodeTooLarge && limit > 1 {
				limit = max(1, limit/4)
				continue
			}
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
			k, err := keys.DecodeKey(kb[skip:])
			if err != nil {
				derr = Errorf(abi.CodeInternal, "stored key %s does not decode: %v", quote(kb), err)
				return false
			}
			var v V
			if err := Unmarshal(vb, &v); err != nil {
				derr = Errorf(abi.CodeInternal, "stored value at %s does not decode as %T: %v", quote(kb), v, err)
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
