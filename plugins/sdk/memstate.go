package sdk

import (
	"bytes"
	"slices"
	"strings"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/abi/mp"
)

// MemState is an in-memory State with the host's semantics, for testing
// plugins natively (go test, no wasm):
//   - keys are ordered as unsigned bytes and carry versions, taken from the
//     index set with SetIndex;
//   - Get and Scan return slices that the next call overwrites, exactly like
//     the wasm State, so code that keeps them without copying fails its tests;
//   - Apply, Query and Migrate run a Plugin the way the host does: one entry
//     at a time, undoing an entry's writes when its result is an error, with a
//     read-only State for queries, and the same error-to-code rules.
//
// A MemState is not safe for concurrent use.
type MemState struct {
	m     map[string]*memValue
	keys  []string // sorted; may hold keys since deleted (m is the truth)
	added []string // keys created since keys was last merged
	index uint64
	term  uint64 // of the entry being applied, for CurrentEntry
	time  int64

	// Writes of the entry being applied, to undo it (journal is nil when no
	// entry is open).
	journal []undo
	inEntry bool

	buf  []byte // backs the answer of the last Get or Scan
	recs []abi.Record
}

type memValue struct {
	value   []byte
	version uint64
}

type undo struct {
	key     string
	existed bool
	prev    memValue
}

// NewMemState returns an empty MemState at index 0.
func NewMemState() *MemState {
	return &MemState{m: make(map[string]*memValue)}
}

// SetIndex sets the log index that Set records as the version of the keys it
// writes. Apply and Migrate set it for each entry.
func (s *MemState) SetIndex(index uint64) { s.index = index }

// Index returns the current index.
func (s *MemState) Index() uint64 { return s.index }

// CurrentEntry returns the index set by SetIndex (or of the entry being
// applied) and the term and time of the last entry Apply ran (see EntryOf).
func (s *MemState) CurrentEntry() Entry { return Entry{Index: s.index, Term: s.term, Time: s.time} }

// Len returns the number of keys.
func (s *MemState) Len() int { return len(s.m) }

// Get implements State.
func (s *MemState) Get(key []byte) ([]byte, uint64, bool) {
	v, ok := s.m[string(key)]
	if !ok {
		return nil, 0, false
	}
	s.buf = append(s.buf[:0], v.value...)
	return s.buf, v.version, true
}

// Set implements State.
func (s *MemState) Set(key, value []byte) error {
	if err := checkSet(key, value); err != nil {
		return err
	}
	v, ok := s.m[string(key)]
	s.record(string(key), v, ok)
	if !ok {
		k := string(key)
		v = &memValue{}
		s.m[k] = v
		s.added = append(s.added, k)
	}
	v.value = append(v.value[:0:0], value...)
	v.version = s.index
	return nil
}

// Delete implements State.
func (s *MemState) Delete(key []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	v, ok := s.m[string(key)]
	if !ok {
		return false, nil
	}
	s.record(string(key), v, true)
	delete(s.m, string(key))
	return true, nil
}

// record journals the state of key before a write, when an entry is open.
func (s *MemState) record(key string, v *memValue, existed bool) {
	if !s.inEntry {
		return
	}
	u := undo{key: key, existed: existed}
	if existed {
		u.prev = *v
	}
	s.journal = append(s.journal, u)
}

// sorted merges the keys created since the last scan into s.keys and drops
// deleted ones.
func (s *MemState) sorted() []string {
	if len(s.added) == 0 && len(s.keys) == len(s.m) {
		return s.keys
	}
	slices.Sort(s.added)
	merged := make([]string, 0, len(s.m))
	i, j := 0, 0
	for i < len(s.keys) || j < len(s.added) {
		var k string
		if j >= len(s.added) || (i < len(s.keys) && s.keys[i] <= s.added[j]) {
			k = s.keys[i]
			i++
		} else {
			k = s.added[j]
			j++
		}
		if _, ok := s.m[k]; !ok {
			continue
		}
		if n := len(merged); n > 0 && merged[n-1] == k {
			continue
		}
		merged = append(merged, k)
	}
	s.keys, s.added = merged, s.added[:0]
	return s.keys
}

// Scan implements State.
func (s *MemState) Scan(start, end []byte, limit int) ([]abi.Record, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	keys := s.sorted()
	i, _ := slices.BinarySearch(keys, string(start))
	// Measure first: the answer is refused as a whole if it is too large.
	size := int64(0)
	n := 0
	for j := i; j < len(keys) && n < limit; j++ {
		if len(end) > 0 && strings.Compare(keys[j], string(end)) >= 0 {
			break
		}
		v := s.m[keys[j]]
		size += int64(recordSize(len(keys[j]), len(v.value), v.version))
		n++
	}
	size += int64(mp.ArrayHeaderSize(n))
	if size > MaxScanBytes {
		return nil, errScanTooLarge(size)
	}
	// Copy into one reused buffer, as the wasm State does.
	s.buf = s.buf[:0]
	s.recs = s.recs[:0]
	for j := i; j < i+n; j++ {
		v := s.m[keys[j]]
		s.buf = append(s.buf, keys[j]...)
		s.buf = append(s.buf, v.value...)
	}
	off := 0
	for j := i; j < i+n; j++ {
		v := s.m[keys[j]]
		k := s.buf[off : off+len(keys[j]) : off+len(keys[j])]
		off += len(k)
		val := s.buf[off : off+len(v.value) : off+len(v.value)]
		off += len(val)
		s.recs = append(s.recs, abi.Record{Key: k, Value: val, Version: v.version})
	}
	return s.recs, nil
}

// recordSize is the MsgPack size of one Record [key bin, value bin, version].
func recordSize(klen, vlen int, version uint64) int {
	return 1 + mp.BinSize(klen) + mp.BinSize(vlen) + mp.UintSize(version)
}

// Dump returns every record in key order, as copies.
func (s *MemState) Dump() []abi.Record {
	keys := s.sorted()
	out := make([]abi.Record, 0, len(keys))
	for _, k := range keys {
		v := s.m[k]
		out = append(out, abi.Record{Key: []byte(k), Value: bytes.Clone(v.value), Version: v.version})
	}
	return out
}

// ReadOnly returns a view of s whose Set and Delete fail with
// abi.CodeReadOnly, as the host's State does during a query.
func (s *MemState) ReadOnly() State { return readOnly{s} }

type readOnly struct{ s *MemState }

func (r readOnly) Get(key []byte) ([]byte, uint64, bool) { return r.s.Get(key) }
func (r readOnly) Set(key, value []byte) error           { return errReadOnly }
func (r readOnly) Delete(key []byte) (bool, error)       { return false, errReadOnly }
func (r readOnly) Scan(start, end []byte, limit int) ([]abi.Record, error) {
	return r.s.Scan(start, end, limit)
}

// CurrentEntry is zero during a query, as on the host.
func (r readOnly) CurrentEntry() Entry { return Entry{} }

// begin opens an entry: its writes are journaled until end.
func (s *MemState) begin(index uint64) {
	s.index = index
	s.inEntry = true
	s.journal = s.journal[:0]
}

// end closes the entry, undoing its writes unless ok.
func (s *MemState) end(ok bool) {
	if !ok {
		for i := len(s.journal) - 1; i >= 0; i-- {
			u := s.journal[i]
			if !u.existed {
				delete(s.m, u.key)
				continue
			}
			prev := u.prev
			if _, live := s.m[u.key]; !live {
				s.added = append(s.added, u.key)
			}
			s.m[u.key] = &prev
		}
	}
	clear(s.journal)
	s.journal = s.journal[:0]
	s.inEntry = false
}

// Apply runs p on entries in order, as the host does: each entry's writes are
// kept if its result is a success and undone otherwise. Versions are the
// entries' indexes. A panic in p is not recovered (in wasm it would trap).
func (s *MemState) Apply(p Plugin, entries ...abi.Entry) []abi.Result {
	results := make([]abi.Result, len(entries))
	for i, e := range entries {
		s.begin(e.Index)
		s.term, s.time = e.Term, e.Time
		out, err := callApply(p, nil, s, Entry{Index: e.Index, Term: e.Term, Time: e.Time, Data: e.Data})
		results[i] = toResult(out, err)
		s.end(results[i].Code == abi.CodeOK)
	}
	return results
}

// Query runs p's query logic on q against a read-only view of s.
func (s *MemState) Query(p Plugin, q []byte) abi.Result {
	out, err := callQuery(p, nil, s.ReadOnly(), q)
	return toResult(out, err)
}

// Migrate runs p's migration as the host does at a deploy: at index m.Index,
// keeping its writes only if it succeeds. A plugin that is not a Migrator
// succeeds without changes.
func (s *MemState) Migrate(p Plugin, m abi.Migration) abi.Result {
	mg, ok := p.(Migrator)
	if !ok {
		return abi.Result{Code: abi.CodeOK}
	}
	s.begin(m.Index)
	r := toResult(nil, mg.Migrate(s, m))
	s.end(r.Code == abi.CodeOK)
	return r
}

// toResult converts a plugin's answer into the Result the host would record
// (the payload is copied).
func toResult(out []byte, err error) abi.Result {
	if err != nil {
		code, msg := errorResult(err)
		return abi.Result{Code: code, Data: []byte(msg)}
	}
	return abi.Result{Code: abi.CodeOK, Data: bytes.Clone(out)}
}
