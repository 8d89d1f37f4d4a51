package host

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/raftkv/raftkv/abi"
	"github.com/raftkv/raftkv/host/state"
)

// TestSessionsBounds: records are found with their result; another command
// under a used key is refused; the oldest go first beyond the key count and
// beyond the TTL of the log's time, and a key recorded after its eviction
// is recorded anew.
func TestSessionsBounds(t *testing.T) {
	st := state.New()
	s := newSessions(st)
	s.maxKeys, s.ttl = 3, time.Minute
	const t0 = int64(1_000_000_000_000)
	rec := func(key string, index uint64, at int64) {
		st.Update(func() {
			s.record(key, "kv", []byte(key), index, at, abi.Result{Code: abi.CodeOK, Data: []byte("r-" + key)})
		})
	}
	has := func(key string) bool {
		r, ok := s.lookup(key, "kv", []byte(key))
		if ok && (r.err != nil || string(r.res.Data) != "r-"+key) {
			t.Fatalf("lookup %s: %+v", key, r)
		}
		return ok
	}
	for i := range 3 {
		rec(fmt.Sprint("k", i), uint64(10+i), t0)
	}
	for i := range 3 {
		if !has(fmt.Sprint("k", i)) {
			t.Fatalf("k%d not recorded", i)
		}
	}
	if r, ok := s.lookup("k0", "kv", []byte("other bytes")); !ok || !errors.Is(r.err, ErrInvalid) {
		t.Fatalf("k0 with another command: %+v, %v; want ErrInvalid", r, ok)
	}
	if r, ok := s.lookup("k0", "other", []byte("k0")); !ok || !errors.Is(r.err, ErrInvalid) {
		t.Fatalf("k0 for another plugin: %+v, %v; want ErrInvalid", r, ok)
	}
	rec("k3", 13, t0) // a fourth key: the oldest goes
	if has("k0") || !has("k1") || !has("k3") {
		t.Fatalf("after a fourth key: k0 %v k1 %v k3 %v; want k0 evicted", has("k0"), has("k1"), has("k3"))
	}
	rec("k4", 14, t0+int64(time.Minute)+1) // a minute later: all older records expire
	for _, k := range []string{"k1", "k2", "k3"} {
		if has(k) {
			t.Fatalf("%s kept past the TTL", k)
		}
	}
	if !has("k4") {
		t.Fatal("k4 not recorded")
	}
	rec("k1", 15, t0+int64(time.Minute)+2)
	if !has("k1") {
		t.Fatal("k1 not recorded again after its eviction")
	}
	ns, _ := st.Lookup(sessionsNamespace)
	if ns.Len() != 4 { // two records, two order entries
		t.Fatalf("namespace has %d keys, want 4", ns.Len())
	}
}
