package kvstore

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
)

// KV is the key-value state machine. It holds no data of its own (the State
// does), so the zero value is ready and copies are interchangeable. Package
// kvplugin puts it behind the SDK's plugin interfaces; this package imports
// no SDK, so that the HTTP API can use its codec without linking guest code.
type KV struct{}

// State is what the key-value logic needs of a plugin's state: the SDK's
// sdk.State has these methods, with the same meaning.
type State interface {
	Get(key []byte) (value []byte, version uint64, ok bool)
	Set(key, value []byte) error
	Delete(key []byte) (existed bool, err error)
	Scan(start, end []byte, limit int) ([]abi.Record, error)
}

// Info is the plugin's raftkv_info answer.
func (KV) Info() abi.Info {
	return abi.Info{Name: "kv", Version: "1.0.0", Description: "ordered key-value store with versions, compare-and-set and transactions"}
}

var (
	errNotFound  = &abi.Error{Code: abi.CodeNotFound, Message: "key not found"}
	errKeyExists = &abi.Error{Code: abi.CodeConflict, Message: "key exists"}
	errNoKey     = &abi.Error{Code: abi.CodeConflict, Message: "key not found"}
)

// AppendApply executes the command data of the log entry at index (the
// version of every key it writes) and appends its result to dst.
func (KV) AppendApply(dst []byte, st State, index uint64, data []byte) ([]byte, error) {
	if key, value, ok := canonicalSet(data); ok {
		if err := st.Set(key, value); err != nil {
			return dst, err
		}
		return appendSetResult(dst, index), nil
	}
	return applyCommand(dst, st, index, data)
}

// applyCommand decodes and runs any command (AppendApply keeps the hot path
// small).
func applyCommand(dst []byte, st State, index uint64, data []byte) ([]byte, error) {
	var c command
	if err := decodeCommand(data, &c); err != nil {
		return dst, err
	}
	if c.op == OpTxn {
		return applyTxn(dst, st, index, c.ops)
	}
	return execute(dst, st, index, &c)
}

// execute runs one SET, DELETE, CAS or GET command.
func execute(dst []byte, st State, index uint64, c *command) ([]byte, error) {
	switch c.op {
	case OpSet:
		if err := st.Set(c.key, c.value); err != nil {
			return dst, err
		}
		return appendSetResult(dst, index), nil
	case OpCAS:
		if err := checkVersion(st, c.key, c.version); err != nil {
			return dst, err
		}
		if err := st.Set(c.key, c.value); err != nil {
			return dst, err
		}
		return appendSetResult(dst, index), nil
	case OpDelete:
		if c.hasVersion {
			if err := checkVersion(st, c.key, c.version); err != nil {
				return dst, err
			}
		}
		existed, err := st.Delete(c.key)
		if err != nil {
			return dst, err
		}
		return appendDeleteResult(dst, existed), nil
	case OpGet:
		return get(dst, st, c.key)
	}
	return dst, fmt.Errorf("kvstore: cannot execute op %v", c.op)
}

// checkVersion enforces a CAS or conditional DELETE: the key's current
// version, 0 if it is absent, must equal want.
func checkVersion(st State, key []byte, want uint64) error {
	_, have, ok := st.Get(key)
	switch {
	case !ok && want == 0:
		return nil
	case !ok:
		return errNoKey
	case want == 0:
		return errKeyExists
	case have != want:
		return &abi.Error{Code: abi.CodeConflict, Message: fmt.Sprintf("version mismatch: key has version %d, expected %d", have, want)}
	}
	return nil
}

// applyTxn checks every operation of a TXN, then runs them in order. The
// first failure is the entry's error, and the host then undoes the writes of
// the operations before it.
func applyTxn(dst []byte, st State, index uint64, ops []byte) ([]byte, error) {
	if err := forEachOp(ops, func(int, *command) error { return nil }); err != nil {
		return dst, err
	}
	dst = append(dst, 0x81, 0xa7, 'r', 'e', 's', 'u', 'l', 't', 's')
	dst = mp.AppendArrayHeader(dst, txnLen(ops))
	err := forEachOp(ops, func(_ int, c *command) error {
		var err error
		dst, err = execute(dst, st, index, c)
		return err
	})
	return dst, err
}

func get(dst []byte, st State, key []byte) ([]byte, error) {
	v, ver, ok := st.Get(key)
	if !ok {
		return dst, errNotFound
	}
	return appendGetResult(dst, v, ver), nil
}

// AppendQuery answers the GET or LIST query data, appending the answer to
// dst.
func (KV) AppendQuery(dst []byte, st State, data []byte) ([]byte, error) {
	var q query
	if err := decodeQuery(data, &q); err != nil {
		return dst, err
	}
	if q.op == OpGet {
		return get(dst, st, q.key)
	}
	return list(dst, st, &q)
}

// successor appends to dst the smallest possible key after k (nil if there
// is none): k followed by a 0 byte, or, for a key of the maximum length, the
// end of the keys that start with k.
func successor(dst, k []byte) []byte {
	if len(k) < abi.MaxKeySize {
		return append(append(dst, k...), 0)
	}
	return prefixEnd(k)
}

// listReserve is the room a LIST answer needs beyond its items: a longer
// items header and the next key.
const listReserve = 5 + 5 + 5 + abi.MaxKeySize

// reserve returns dst with room for n more bytes, growing it to exactly that
// if it must.
func reserve(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	grown := make([]byte, len(dst), len(dst)+n)
	copy(grown, dst)
	return grown
}

// list answers a LIST: keys in [max(prefix, start), min(PrefixEnd(prefix),
// end)), at most q.limit of them and at most MaxListBytes of encoded items.
func list(dst []byte, st State, q *query) ([]byte, error) {
	lo := q.prefix
	if bytes.Compare(q.start, lo) > 0 {
		lo = q.start
	}
	hi := prefixEnd(q.prefix)
	if len(q.end) > 0 && (hi == nil || bytes.Compare(q.end, hi) < 0) {
		hi = q.end
	}

	dst = append(dst, 0, 0xa5, 'i', 't', 'e', 'm', 's') // map header set below
	head := len(dst)
	var (
		count, size int
		next        []byte // the first key not returned, if any
		cursor      = lo   // where the next scan starts; nil when no key can follow
	)
	if cursor == nil {
		cursor = []byte{}
	}
	chunk := min(q.limit+1, abi.MaxScanLimit) // one more than the limit, to know if more exist
	for cursor != nil && (hi == nil || bytes.Compare(cursor, hi) < 0) {
		recs, err := st.Scan(cursor, hi, chunk)
		var ae *abi.Error
		if errors.As(err, &ae) && ae.Code == abi.CodeTooLarge && chunk > 1 {
			chunk /= 2 // large values: fetch fewer records per scan
			continue
		}
		if err != nil {
			return dst, err
		}
		// Choose the records to return, then make room for them at once:
		// growing by appending would leave copies of a large answer behind,
		// and a plugin's memory is small.
		take, add := 0, 0
		for ; take < len(recs); take++ {
			rec := recs[take]
			n := itemSize(len(rec.Key), len(rec.Value), rec.Version)
			if count == q.limit || (count > 0 && size+n > MaxListBytes) {
				next = rec.Key
				break
			}
			count++
			size += n
			add += n
		}
		dst = reserve(dst, add+listReserve)
		for _, rec := range recs[:take] {
			dst = appendItem(dst, rec.Key, rec.Value, rec.Version)
		}
		if next != nil || len(recs) < chunk {
			break
		}
		cursor = successor(cursor[:0:0], recs[len(recs)-1].Key)
	}

	// Insert the items array header, now that the count is known.
	h := mp.AppendArrayHeader(nil, count)
	dst = append(dst, h...)
	copy(dst[head+len(h):], dst[head:len(dst)-len(h)])
	copy(dst[head:], h)
	if next == nil {
		dst[head-7] = 0x81
		return dst, nil
	}
	dst[head-7] = 0x82
	dst = append(dst, 0xa4, 'n', 'e', 'x', 't')
	return mp.AppendBytes(dst, next), nil
}

// prefixEnd is the SDK's PrefixEnd: the smallest key after every key that
// starts with prefix, nil if there is none.
func prefixEnd(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			end := make([]byte, i+1)
			copy(end, prefix)
			end[i]++
			return end
		}
	}
	return nil
}
