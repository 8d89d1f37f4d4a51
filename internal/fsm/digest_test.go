package fsm

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

func checkEnv() Envelope { return Envelope{Kind: KindDigestCheck} }

// TestFSMDigestCheck: a digest-check entry in the middle of a batch records
// the state as of its own index (not the batch's end) and changes nothing;
// its result is its index. A second FSM that restores a snapshot of the
// first and applies the same later entries records the same digests at the
// next check; a check whose entry the FSM never applied is not held.
func TestFSMDigestCheck(t *testing.T) {
	f, _, _ := testFSM(t, longCallTimeout)
	l := &testLog{t: t, f: f}
	v1 := slowWasm(t, "1")
	l.mustOK(deployEnv("a", v1), cmdEnv("a", "set x 1"))
	rs := results(f.ApplyBatch(l.logs(cmdEnv("a", "set y 1"), checkEnv(), cmdEnv("a", "set z 1"), checkEnv())))
	first, second := uint64(4), uint64(6)
	if got := binary.BigEndian.Uint64(rs[1].Res.Data); rs[1].Err != nil || got != first {
		t.Fatalf("check result %v %q, want index %d", rs[1].Err, rs[1].Res.Data, first)
	}
	a, b := f.digests.get(first), f.digests.get(second)
	if a == nil || b == nil {
		t.Fatalf("records at %d and %d: %v %v", first, second, a, b)
	}
	da, db := a.digests(), b.digests()
	if da["a"].State == db["a"].State || da["a"].Module == "" || da["a"].Module != db["a"].Module {
		t.Fatalf("digests at %d %+v and at %d %+v: the write between them must show, the module not change", first, da["a"], second, db["a"])
	}
	if got := CompareDigests(da, db); len(got) != 1 || got[0] != "a" {
		t.Fatalf("CompareDigests: %v", got)
	}

	// A node that restores the state as of the second check and applies
	// the same entries after it agrees at the next check.
	snap := snapshotOf(t, f)
	g, _, _ := testFSM(t, longCallTimeout)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	gl := &testLog{t: t, f: g, index: l.index}
	more := []Envelope{cmdEnv("a", "set w 1"), checkEnv()}
	f.ApplyBatch(l.logs(more...))
	g.ApplyBatch(gl.logs(more...))
	if g.digests.get(second) != nil {
		t.Fatal("the restored FSM holds a record of a check it never applied")
	}
	rf, rg := f.digests.get(l.index), g.digests.get(gl.index)
	if rf == nil || rg == nil {
		t.Fatal("no record at the third check")
	}
	if d := CompareDigests(rf.digests(), rg.digests()); len(d) != 0 {
		t.Fatalf("a restored FSM's digests differ: %v\n%+v\n%+v", d, rf.digests(), rg.digests())
	}
	// Only the last digestRecords are kept.
	for range digestRecords {
		f.ApplyBatch(l.logs(checkEnv()))
	}
	if f.digests.get(first) != nil {
		t.Fatal("an old record was kept")
	}
}
