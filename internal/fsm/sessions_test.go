package fsm

import (
	"bytes"
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
		if ok && (r.Err != nil || string(r.Res.Data) != "r-"+key) {
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
	if r, ok := s.lookup("k0", "kv", []byte("other bytes")); !ok || !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("k0 with another command: %+v, %v; want ErrInvalid", r, ok)
	}
	if r, ok := s.lookup("k0", "other", []byte("k0")); !ok || !errors.Is(r.Err, ErrInvalid) {
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
	ns, _ := st.Lookup(SessionsNamespace)
	if ns.Len() != 4 { // two records, two order entries
		t.Fatalf("namespace has %d keys, want 4", ns.Len())
	}
}

// TestSessionsIndependentOfBatching: the idempotency table reads as if the
// log were applied one entry at a time, however Raft batched it on a node.
// Two FSMs apply the same log, one entry per batch and all in one batch;
// their snapshots must be equal. The log: keyed commands k1, k2, k3 (with
// room for two records, k3's record evicts k1's), then k1 again, which one
// by one finds no record and applies; and every record carries its own
// entry's time.
func TestSessionsIndependentOfBatching(t *testing.T) {
	wasm := slowWasm(t, "1")
	keyed := func(key, cmd string) Envelope {
		e := cmdEnv("slow", cmd)
		e.Key = key
		return e
	}
	tail := []Envelope{
		keyed("k1", "set a 1"), keyed("k2", "set b 1"), keyed("k3", "set c 1"), keyed("k1", "set a 1"),
		cmdEnv("slow", "set d 1"), keyed("k2", "set b 1"), keyed("k4", "set e 1"),
	}
	var snaps [2][]byte
	var answers [2][]string
	for i, oneByOne := range []bool{true, false} {
		f, _, _ := testFSM(t, time.Minute)
		f.sessions.maxKeys = 2
		l := &testLog{t: t, f: f}
		l.mustOK(deployEnv("slow", wasm))
		var rs []*Result
		if oneByOne {
			for _, e := range tail {
				rs = append(rs, l.apply(e)...)
			}
		} else {
			rs = l.apply(tail...)
		}
		for _, r := range rs {
			answers[i] = append(answers[i], fmt.Sprintf("%v %q %v", r.Res.Code, r.Res.Data, r.Err))
		}
		snaps[i] = snapshotOf(t, f)
	}
	if fmt.Sprint(answers[0]) != fmt.Sprint(answers[1]) {
		t.Errorf("answers one by one:\n%q\nin one batch:\n%q", answers[0], answers[1])
	}
	if !bytes.Equal(snaps[0], snaps[1]) {
		t.Errorf("the state after the log applied one entry per batch and in one batch differs")
	}
}
