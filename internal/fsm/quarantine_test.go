package fsm

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// A spin of some 100 s, stopped by quarantineCallTimeout (5 s under the
// race detector, 2 s without: race_test.go): loading a module fits in that
// limit even on a loaded machine, the spin never does.
const longSpin = "2500000000"

func quarantineEnv(name string) Envelope {
	return Envelope{Kind: KindQuarantine, Plugin: name, Payload: nil}
}

// value returns the value of key in the named namespace of f's state.
func value(f *FSM, name, key string) string {
	view, _ := f.View()
	ns, ok := view.Namespace(name)
	if !ok {
		return ""
	}
	v, _, _ := ns.Get([]byte(key))
	return string(v)
}

// TestFSMQuarantineRecovers: an entry that passes the wall-clock limit
// stops the FSM; the entries Raft hands it afterwards are not applied, and
// a later quarantine entry of another plugin does not recover it. A quarantine
// entry of the plugin it stopped at recovers it: the failed entry and the
// plugin's later commands are refused (nothing they wrote is kept), the
// other entries kept meanwhile are applied in order, the plugin's queries
// are refused, and a new deploy lifts the quarantine. A second FSM that
// replays the same log (a restarted node) ends in the same state.
func TestFSMQuarantineRecovers(t *testing.T) {
	t.Parallel() // waits out two call time limits: beside the package's other tests
	v1, v2, v3 := slowWasm(t, "1"), slowWasm(t, "2"), slowWasm(t, "3")
	batches := [][]Envelope{
		{deployEnv("slow", v1), deployEnv("other", v2)},
		{cmdEnv("slow", "set a 1"), cmdEnv("slow", "spin "+longSpin+" k"), cmdEnv("other", "set x 1")},
		{cmdEnv("other", "set y 1"), quarantineEnv("other")},
		{cmdEnv("slow", "set c 1"), quarantineEnv("slow"), cmdEnv("other", "set z 1")},
		{cmdEnv("slow", "set d 1")},
		{deployEnv("slow", v3)},
		{cmdEnv("slow", "set e 1")},
	}
	run := func(f *FSM) [][]*Result {
		l := &testLog{t: t, f: f}
		var out [][]*Result
		var logs []*raft.Log
		for _, b := range batches {
			ls := l.logs(b...)
			logs = append(logs, ls...)
			out = append(out, results(f.ApplyBatch(ls)))
		}
		return out
	}
	f, _, _ := testFSM(t, quarantineCallTimeout)
	rs := run(f)
	check := func(b, i int, want error) {
		t.Helper()
		if got := rs[b][i].Err; (want == nil) != (got == nil) || want != nil && !errors.Is(got, want) {
			t.Errorf("batch %d entry %d: %v, want %v", b, i, got, want)
		}
	}
	check(1, 0, nil)
	check(1, 1, ErrStopped)
	check(1, 2, ErrStopped)
	check(2, 0, ErrStopped)
	check(2, 1, ErrStopped) // a quarantine of another plugin does not recover
	check(3, 0, ErrQuarantined)
	check(3, 1, nil)
	check(3, 2, ErrQuarantined) // other's quarantine, kept in batch 2, was applied at recovery
	check(4, 0, ErrQuarantined)
	check(5, 0, nil)
	check(6, 0, nil)
	if err := f.Stopped(); err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][3]string{{"slow", "a", "1"}, {"slow", "k", ""}, {"slow", "c", ""}, {"slow", "d", ""}, {"slow", "e", "1"},
		{"other", "x", "1"}, {"other", "y", "1"}, {"other", "z", ""}} {
		if got := value(f, kv[0], kv[1]); got != kv[2] {
			t.Errorf("%s %s = %q, want %q", kv[0], kv[1], got, kv[2])
		}
	}
	if p := f.Plugin("other"); p == nil || !p.quarantined {
		t.Errorf("other is not quarantined after its quarantine entry was applied")
	}
	if _, err := f.Query(t.Context(), "other", nil); !errors.Is(err, ErrQuarantined) {
		t.Errorf("a query of the quarantined plugin: %v, want ErrQuarantined", err)
	}
	if f.applied.Load() != 13 {
		t.Errorf("applied index %d, want 13", f.applied.Load())
	}

	// A node that replays the same log with the same limit ends the same.
	g, _, _ := testFSM(t, quarantineCallTimeout)
	rg := run(g)
	for b := range rg {
		for i := range rg[b] {
			if (rg[b][i].Err == nil) != (rs[b][i].Err == nil) {
				t.Errorf("replay: batch %d entry %d: %v, first run %v", b, i, rg[b][i].Err, rs[b][i].Err)
			}
		}
	}
	for _, k := range []string{"a", "k", "c", "d", "e"} {
		if value(f, "slow", k) != value(g, "slow", k) {
			t.Errorf("replay: slow %s = %q, first run %q", k, value(g, "slow", k), value(f, "slow", k))
		}
	}
	for _, name := range []string{"slow", "other"} {
		a, _ := f.View()
		b, _ := g.View()
		na, oka := a.Namespace(name)
		nb, okb := b.Namespace(name)
		if oka != okb || oka && na.Digest() != nb.Digest() {
			t.Errorf("the replaying FSM's %s state differs", name)
		}
	}
}
