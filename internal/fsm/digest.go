package fsm

import (
	"encoding/hex"
	"sort"
	"sync"

	"github.com/raftkv/raftkv/host/state"
)

// Digest checks, the state machine's part (package host's digestcheck.go
// runs the checks and compares): a KindDigestCheck entry (no payload)
// changes nothing, and every node that applies it records, at that index,
// the digest of each namespace's state and the hash of each plugin's
// active module. Recording costs the FSM an immutable view of the state
// (O(namespaces), no copy of the keys); the digests are computed off the
// FSM goroutine by whoever asks first (Digests). Records are kept in
// memory only, the last digestRecords of them.

// KindDigestCheck is far from the other kinds (see KindAddresses).
const KindDigestCheck Kind = 40

// digestRecords is how many digest records a node keeps.
const digestRecords = 4

// PluginDigest is what a node records for one name at a check entry: the
// digest of the namespace's state ("" when it is empty or absent) and the
// hash of the plugin's active module ("" when no plugin has that name).
type PluginDigest struct {
	State  string `msgpack:"state,omitempty" json:"state,omitempty"`
	Module string `msgpack:"module,omitempty" json:"module,omitempty"`
}

// digestRecord is the state as of a check entry, hashed on first use.
type digestRecord struct {
	index   uint64
	view    *state.View       // nil once hashed
	modules map[string]string // plugin name → module hash

	once sync.Once
	sums map[string]PluginDigest
}

func (r *digestRecord) digests() map[string]PluginDigest {
	r.once.Do(func() {
		r.sums = make(map[string]PluginDigest, len(r.modules))
		for _, name := range r.view.Names() {
			ns, _ := r.view.Namespace(name)
			if ns.Len() == 0 {
				continue // an emptied namespace is the same as none
			}
			d := ns.Digest()
			r.sums[name] = PluginDigest{State: hex.EncodeToString(d[:])}
		}
		for name, hash := range r.modules {
			d := r.sums[name]
			d.Module = hash
			r.sums[name] = d
		}
		r.view = nil
	})
	return r.sums
}

// digestLog keeps the last digestRecords records.
type digestLog struct {
	mu      sync.Mutex
	records []*digestRecord // ascending index
}

func (l *digestLog) add(r *digestRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.records); n > 0 && l.records[n-1].index >= r.index {
		// Applied again (a restore to an older index): the later record
		// replaces what follows it.
		i := sort.Search(n, func(i int) bool { return l.records[i].index >= r.index })
		l.records = l.records[:i]
	}
	l.records = append(l.records, r)
	if len(l.records) > digestRecords {
		l.records = append(l.records[:0], l.records[len(l.records)-digestRecords:]...)
	}
}

func (l *digestLog) get(index uint64) *digestRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.index == index {
			return r
		}
	}
	return nil
}

// recordDigests records the state as of a check entry just applied. FSM
// goroutine, outside the store's Update.
func (f *FSM) recordDigests(index uint64) {
	plugins := *f.plugins.Load()
	mods := make(map[string]string, len(plugins))
	for name, p := range plugins {
		mods[name] = p.mod.Hash
	}
	f.digests.add(&digestRecord{index: index, view: f.store.View(), modules: mods})
}

// checkIndex returns the position of the first digest-check entry of the
// envelopes (-1 if none).
func checkIndex(envs []Envelope) int {
	for i := range envs {
		if envs[i].Kind == KindDigestCheck {
			return i
		}
	}
	return -1
}

// Digests returns the digests recorded at the digest-check entry of that
// index, by name, computing them on first use; false if this node holds no
// record there (it did not apply the entry, or restored a snapshot past it,
// or the record is no longer among the last ones).
func (f *FSM) Digests(index uint64) (map[string]PluginDigest, bool) {
	r := f.digests.get(index)
	if r == nil {
		return nil, false
	}
	return r.digests(), true
}

// CompareDigests returns the names whose digests differ, sorted. A name
// missing on one side is an empty state and no module there.
func CompareDigests(a, b map[string]PluginDigest) []string {
	var out []string
	for name := range a {
		if a[name] != b[name] {
			out = append(out, name)
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok && b[name] != (PluginDigest{}) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
