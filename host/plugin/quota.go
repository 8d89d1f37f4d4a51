package plugin

import "fmt"

// quota enforces the write quotas of one entry (Limits.MaxWriteBytes,
// MaxNamespaceKeys, MaxNamespaceBytes), for instances and for Natives alike.
type quota struct {
	lim     *Limits // nil: no quotas
	written uint64  // bytes the entry wrote
	broken  string  // why the entry broke a quota; its result becomes too_large
}

// allowWrite accounts n bytes written by the current entry against
// Limits.MaxWriteBytes. Over the limit, the entry is marked: its result will
// be too_large.
func (q *quota) allowWrite(n uint64) bool {
	if q.lim == nil {
		return true
	}
	lim := q.lim
	if q.written+n > lim.MaxWriteBytes {
		q.broken = fmt.Sprintf("the entry writes more than max_write_bytes (%d bytes of keys and values)", lim.MaxWriteBytes)
		return false
	}
	q.written += n
	return true
}

// allowSet checks a state_set of key and val against the write and namespace
// quotas.
func (q *quota) allowSet(st Store, key, val []byte) bool {
	if !q.allowWrite(uint64(len(key) + len(val))) {
		return false
	}
	if q.lim == nil {
		return true
	}
	lim := q.lim
	keys, size := uint64(st.Len()), uint64(st.Bytes())
	add := uint64(len(key) + len(val))
	if keys+1 <= lim.MaxNamespaceKeys && size+add <= lim.MaxNamespaceBytes {
		return true // fits even if the key is new
	}
	if old, _, ok := st.Get(key); ok {
		size -= uint64(len(key) + len(old))
	} else {
		keys++
	}
	switch {
	case keys > lim.MaxNamespaceKeys:
		q.broken = fmt.Sprintf("the namespace would hold more than max_namespace_keys (%d keys)", lim.MaxNamespaceKeys)
	case size+add > lim.MaxNamespaceBytes:
		q.broken = fmt.Sprintf("the namespace would hold more than max_namespace_bytes (%d bytes of keys and values)", lim.MaxNamespaceBytes)
	default:
		return true
	}
	return false
}
